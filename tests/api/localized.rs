//! Errors in the caller's language: a `google.rpc.LocalizedMessage` chosen by
//! `accept-language`, reasons on field violations, `ErrorInfo` on every error.

use govit_platform::Role;
use govit_proto::projects::v1 as pb;
use tonic::{Code, Request};
use tonic_types::StatusExt;

use crate::helpers::*;

fn in_language<T>(message: T, language: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("accept-language", language.parse().unwrap());
    request
}

fn localized(status: &tonic::Status) -> (String, String) {
    let message = status
        .get_error_details()
        .localized_message()
        .cloned()
        .expect("a LocalizedMessage");
    (message.locale, message.message)
}

#[tokio::test]
async fn a_missing_project_is_told_in_the_callers_language() {
    let app = spawn_app().await;
    let missing = || pb::GetProjectRequest {
        name: "projects/2026-0099".into(),
    };
    let office = app.client(Role::Office);
    let chinese = assert_code(
        office
            .clone()
            .get_project(in_language(missing(), "zh-CN,zh;q=0.9,en;q=0.8"))
            .await,
        Code::NotFound,
    );
    assert_eq!(
        localized(&chinese),
        ("zh-CN".into(), "未找到项目 projects/2026-0099".into())
    );
    let english = assert_code(
        office
            .clone()
            .get_project(in_language(missing(), "en-US"))
            .await,
        Code::NotFound,
    );
    assert_eq!(
        localized(&english),
        ("en".into(), english.message().to_owned())
    );
    // The reason is the same whatever the language: programs branch on it.
    assert_eq!(error_reason(&chinese), "NOT_FOUND");
    assert_eq!(error_reason(&english), "NOT_FOUND");
}

#[tokio::test]
async fn field_violations_carry_reasons_and_localized_messages() {
    let app = spawn_app().await;
    let mut project = new_project(&app.applicant_code);
    project.display_name = String::new();
    project.contacts[0].phone = "call me".into();
    let status = assert_code(
        app.client(Role::Applicant)
            .create_project(in_language(
                pb::CreateProjectRequest {
                    project: Some(project),
                    request_id: String::new(),
                },
                "zh-CN",
            ))
            .await,
        Code::InvalidArgument,
    );
    let details = status.get_error_details();
    let violations: Vec<(String, String, String)> = details
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|v| {
            (
                v.field.clone(),
                v.reason.clone(),
                v.localized_message.clone().unwrap().message,
            )
        })
        .collect();
    assert!(
        violations.contains(&(
            "project.display_name".into(),
            "REQUIRED".into(),
            "project.display_name：必填".into()
        )),
        "{violations:?}"
    );
    assert!(
        violations
            .iter()
            .any(|(field, reason, _)| field == "project.contacts[0].phone"
                && reason == "INVALID_PHONE_NUMBER"),
        "{violations:?}"
    );
    assert!(localized(&status).1.starts_with("请求有误："));
    assert_eq!(app.project_count().await, 0);
}

#[tokio::test]
async fn authentication_and_permission_errors_are_localized_without_parser_internals() {
    let app = spawn_app().await;
    let list = || pb::ListProjectsRequest::default();
    let anonymous = assert_code(
        app.client_with_token(None)
            .list_projects(in_language(list(), "zh"))
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(error_reason(&anonymous), "UNAUTHENTICATED");
    assert_eq!(localized(&anonymous).1, "未登录或登录凭证无效，请重新登录");
    let garbage = assert_code(
        app.client_with_token(Some("not.a.jwt".into()))
            .list_projects(in_language(list(), "en"))
            .await,
        Code::Unauthenticated,
    );
    for internal in [
        "Base64",
        "base64",
        "Json",
        "serde",
        "InvalidToken",
        "Error(",
    ] {
        assert!(
            !garbage.message().contains(internal),
            "the message echoes parser internals: {}",
            garbage.message()
        );
    }
    let denied = assert_code(
        app.client(Role::Expert)
            .create_project(in_language(
                pb::CreateProjectRequest {
                    project: Some(new_project(&app.applicant_code)),
                    request_id: String::new(),
                },
                "zh-CN",
            ))
            .await,
        Code::PermissionDenied,
    );
    assert_eq!(error_reason(&denied), "PERMISSION_DENIED");
    assert_eq!(localized(&denied).1, "无权执行此操作");
}
