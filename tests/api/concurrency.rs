use govit_platform::Role;
use govit_proto::projects::v1::{self as pb, ProjectState as S};
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn two_concurrent_transitions_on_one_project_have_exactly_one_winner() {
    let app = spawn_app().await;
    for round in 0..5 {
        let p = submitted(&app).await;
        let office = app.client(Role::Office);
        let (mut a, mut b) = (office.clone(), office.clone());
        let (returned, accepted) = tokio::join!(
            a.return_project(pb::ReturnProjectRequest {
                request_id: String::new(),
                name: p.name.clone(),
                etag: p.etag.clone(),
                reasons: vec!["incomplete".into()]
            }),
            b.accept_for_review(pb::AcceptForReviewRequest {
                request_id: String::new(),
                name: p.name.clone(),
                etag: p.etag.clone(),
                panel: panel()
            }),
        );
        let outcomes = [
            returned.as_ref().map(|_| ()).map_err(|s| s.code()),
            accepted.as_ref().map(|_| ()).map_err(|s| s.code()),
        ];
        let winners = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(winners, 1, "round {round}: {outcomes:?}");
        let loser = outcomes.iter().find_map(|o| o.err()).unwrap();
        assert!(
            matches!(loser, Code::Aborted | Code::FailedPrecondition),
            "round {round}: {loser:?}"
        );
        let now = get(&app, &p.name).await;
        let expected = if returned.is_ok() {
            S::Returned
        } else {
            S::UnderPreliminaryReview
        };
        assert_eq!(state(&now), expected);
        let events = app
            .client(Role::Office)
            .list_project_events(pb::ListProjectEventsRequest {
                parent: p.name.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .events;
        assert_eq!(
            events
                .iter()
                .filter(|e| e.action == "ReturnProject" || e.action == "AcceptForReview")
                .count(),
            1
        );
    }
}

#[tokio::test]
async fn concurrent_creations_get_distinct_codes() {
    let app = spawn_app().await;
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let client = app.client(Role::Applicant);
        let project = new_project(&app.applicant_code);
        tasks.push(tokio::spawn(async move {
            client
                .clone()
                .create_project(pb::CreateProjectRequest {
                    request_id: String::new(),
                    project: Some(project),
                })
                .await
                .map(|r| r.into_inner().code)
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap().unwrap());
    }
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), 12);
}
