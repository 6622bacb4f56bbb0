-- The scheduling service's migration stream starts here; its tables arrive with its issue. This
-- migration only marks the database as belonging to the scheduling service.
CREATE TABLE service_identity (
    service TEXT PRIMARY KEY
);
INSERT INTO service_identity (service) VALUES ('scheduling');
