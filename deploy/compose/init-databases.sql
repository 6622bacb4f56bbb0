-- One database per service, each with its own migration stream.
CREATE DATABASE govit_projects;
CREATE DATABASE govit_experts;
CREATE DATABASE govit_scheduling;
