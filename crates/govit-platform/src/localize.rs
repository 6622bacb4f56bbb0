//! Errors a program and a person can act on, in the caller's language. Every error status the
//! server sends passes through [`enrich`] once, on its way out: it gets a `google.rpc.ErrorInfo`
//! if it has none (tonic's own refusals have none), a stable `reason` on each field violation,
//! and a `google.rpc.LocalizedMessage` in Chinese (zh-CN) or English, chosen by the request's
//! `accept-language`, so that an applicant-facing page needs no translation table.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{FieldViolation, LocalizedMessage, StatusExt};

use crate::error::DOMAIN;

/// The languages errors are told in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Chinese,
    English,
}

impl Language {
    /// The BCP-47 tag a `LocalizedMessage` carries.
    pub fn locale(self) -> &'static str {
        match self {
            Language::Chinese => "zh-CN",
            Language::English => "en",
        }
    }

    /// The caller's preference among the two, from an `accept-language` header (RFC 9110
    /// weights); Chinese when the header names neither, as the office's users read Chinese.
    pub fn from_accept_language(header: Option<&str>) -> Language {
        let mut best: Option<(f32, Language)> = None;
        for item in header.unwrap_or_default().split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            // No weight is 1; a weight that is not a number from 0 to 1 counts as 0 ("not
            // wanted"), as RFC 9110 allows no other.
            let weight = match parts.find_map(|p| p.trim().strip_prefix("q=")) {
                None => 1.0,
                Some(q) => q
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|w| (0.0..=1.0).contains(w))
                    .unwrap_or(0.0),
            };
            let language = if tag == "zh" || tag.starts_with("zh-") {
                Language::Chinese
            } else if tag == "en" || tag.starts_with("en-") {
                Language::English
            } else {
                continue;
            };
            if weight > 0.0 && best.is_none_or(|(w, _)| weight > w) {
                best = Some((weight, language));
            }
        }
        best.map_or(Language::Chinese, |(_, language)| language)
    }
}

/// The `ErrorInfo` reason of a status that came with none: its code's name.
fn code_reason(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The Chinese text of each reason; `{key}` is replaced by the `ErrorInfo` metadata's value.
/// Every reason docs/api.md lists is here (a test checks).
const CHINESE: &[(&str, &str)] = &[
    ("INVALID_ARGUMENT", "请求有误：{fields}"),
    ("NOT_FOUND", "未找到{resource_type} {resource_name}"),
    ("ALREADY_EXISTS", "{resource_type} {resource_name} 已存在"),
    (
        "REQUEST_ID_REUSED",
        "该请求编号（request_id）已用于另一个请求；新的请求请使用新的编号",
    ),
    (
        "REQUEST_IN_PROGRESS",
        "相同请求编号的请求仍在处理中，请稍后重试",
    ),
    (
        "REQUEST_APPLIED_ANSWER_LOST",
        "相同请求编号的请求已经执行，但其结果未能保留；请查询相关数据",
    ),
    ("STATE_CONFLICT", "{subject} 当前的状态不允许此操作"),
    (
        "IMPORT_IN_PROGRESS",
        "另一份专家名册正在导入，请在其完成后重新提交",
    ),
    ("DOCUMENT_MISSING", "缺少此步骤所需的文件"),
    ("FIELD_MISSING", "此步骤所需的内容尚未填写：{subject}"),
    ("BUDGET_EXCEEDED", "支出将超过批复的概算"),
    (
        "CONTRACT_EXCEEDS_BUDGET",
        "合同金额超过批复的概算，请先申请概算调整并获批准",
    ),
    (
        "STABLE_OPERATION_PERIOD",
        "项目稳定运行期未满，尚不能进行后评价",
    ),
    (
        "REAPPROVAL_REQUIRED",
        "概算调整超过规定比例，需报原审批部门重新审批",
    ),
    (
        "CALENDAR_YEAR_MISSING",
        "工作日历尚未包含该年份，请先导入该年的日历",
    ),
    ("REVIEW_MISMATCH", "该评审结果不属于本项目当前的评审"),
    ("REVIEW_CONCLUDED", "评审已有结论，不能取消"),
    (
        "INSUFFICIENT_EXPERTS",
        "专家库中符合条件的专家不足，无法组成评审专家组",
    ),
    (
        "ALTERNATES_EXHAUSTED",
        "该类别的候补专家已用完，请进行补充抽取",
    ),
    ("NOT_ON_PANEL", "该专家不在此评审专家组中"),
    ("ALREADY_REPLACED", "该专家已被替换"),
    ("WITNESS_REQUIRED", "抽取正在等待见证人提交随机数"),
    ("DOUBLE_BOOKED", "专家在该时间已有其他会议"),
    ("EXPERT_UNAVAILABLE", "专家已声明当天不能参加"),
    ("OPINIONS_MISSING", "尚有已确认的专家未提交评审意见"),
    (
        "MESSAGE_OVERTAKEN",
        "该消息的对象已有更新的消息送达，不能再重试",
    ),
    (
        "UPLOAD_OFFSET_MISMATCH",
        "上传位置不符：已接收 {received_bytes} 字节，请从该位置继续上传",
    ),
    (
        "CONCURRENT_MODIFICATION",
        "数据已被他人修改，请重新读取后再试",
    ),
    ("PERMISSION_DENIED", "无权执行此操作"),
    ("UNAUTHENTICATED", "未登录或登录凭证无效，请重新登录"),
    (
        "PEER_UNAVAILABLE",
        "所依赖的服务暂时无法访问，未做任何修改，请稍后重试",
    ),
    ("DEADLINE_EXCEEDED", "请求处理超时，请稍后重试"),
    ("RATE_LIMITED", "请求过于频繁，请稍后重试"),
    ("MESSAGE_TOO_LARGE", "请求过大，超过服务器接受的上限"),
    ("RESOURCE_EXHAUSTED", "请求过大或服务器资源不足"),
    ("UNIMPLEMENTED", "服务不支持此方法"),
    ("ABORTED", "操作因并发冲突而中止，请重试"),
    ("FAILED_PRECONDITION", "当前状态不允许此操作"),
    ("OUT_OF_RANGE", "超出允许范围"),
    ("UNAVAILABLE", "服务暂时无法访问，请稍后重试"),
    ("CANCELLED", "请求已取消"),
    (
        "INTERNAL",
        "服务器内部错误，请将响应头中的 x-request-id 提供给管理员",
    ),
    ("UNKNOWN", "未知错误"),
    ("DATA_LOSS", "数据损坏"),
];

/// Resource types as messages name them, in Chinese.
const RESOURCE_TYPES: &[(&str, &str)] = &[
    ("project", "项目"),
    ("organization", "单位"),
    ("document", "文件"),
    ("upload", "上传"),
    ("expert", "专家"),
    ("category", "专业类别"),
    ("draw", "抽取"),
    ("review", "评审"),
    ("invitation", "邀请"),
    ("opinion", "评审意见"),
    ("notification", "通知"),
    ("milestone", "里程碑"),
    ("inspection", "检查"),
    ("finding", "问题"),
    ("budget change", "概算调整"),
    ("progress report", "进度报告"),
    ("override", "评审结果变更"),
    ("notice", "通报"),
    ("outbox message", "待发消息"),
    ("calendar year", "工作日历年度"),
];

/// A field violation's stable reason and its Chinese text, from its description (the one
/// place every violation passes through; the descriptions follow a few fixed shapes).
fn field_reason(description: &str) -> (&'static str, String) {
    let d = description;
    let rule = |reason: &'static str, text: &str| (reason, text.to_owned());
    if d == "is required" || d == "must not be empty" || d == "must be specified" {
        rule("REQUIRED", "必填")
    } else if let Some(max) = d
        .strip_prefix("must be at most ")
        .and_then(|rest| rest.strip_suffix(" characters"))
    {
        ("TOO_LONG", format!("超过 {max} 个字符的长度上限"))
    } else if d.contains("control characters") {
        rule("INVALID_CHARACTERS", "含有不允许的控制字符")
    } else if d.contains("appears twice") {
        rule("DUPLICATE", "有重复")
    } else if d.contains("phone number") {
        rule("INVALID_PHONE_NUMBER", "不是有效的电话号码")
    } else if d.contains("e-mail") {
        rule("INVALID_EMAIL", "不是有效的电子邮箱地址")
    } else if d.contains("credit code") {
        rule("INVALID_CREDIT_CODE", "不是有效的统一社会信用代码")
    } else if d.contains("resident ID number") {
        rule("INVALID_ID_NUMBER", "不是有效的居民身份证号码")
    } else if d.contains("page token") {
        rule("INVALID_PAGE_TOKEN", "分页令牌无效，请从第一页重新读取")
    } else if d.contains("working day") {
        rule("NOT_A_WORKING_DAY", "不是工作日")
    } else if d.contains("in the future") || d.contains("before the project") {
        rule("DATE_OUT_OF_RANGE", "日期不在允许的范围内")
    } else if d.contains("is not a known value") || d.contains("must be one of") {
        rule("UNKNOWN_VALUE", "不是可接受的取值")
    } else if let Some(pattern) = d.strip_prefix("must be ").filter(|p| p.contains("/{")) {
        let pattern = pattern.split([',', ' ']).next().unwrap_or(pattern);
        ("INVALID_NAME", format!("名称格式不正确，应为 {pattern}"))
    } else if d.contains("between") || d.contains("negative") || d.starts_with("must be from") {
        rule("OUT_OF_RANGE", "超出允许的范围")
    } else if d.contains("limit") || d.contains("at most") {
        rule("TOO_LARGE", "超过上限")
    } else if d.contains("does not match") {
        rule("MISMATCH", "与实际内容不符")
    } else {
        rule("INVALID_VALUE", "取值无效")
    }
}

/// The template with each `{key}` replaced by its value; a placeholder with no value is
/// dropped. Values are inserted as they are: braces in a value (`projects/{code}`) stay.
fn fill(template: &str, metadata: &HashMap<String, String>, fields: &str) -> String {
    let value_of = |key: &str| -> String {
        match key {
            "fields" => fields.to_owned(),
            "resource_type" => metadata
                .get(key)
                .map(|v| {
                    RESOURCE_TYPES
                        .iter()
                        .find(|(en, _)| en == v)
                        .map_or(v.as_str(), |(_, zh)| zh)
                        .to_owned()
                })
                .unwrap_or_default(),
            _ => metadata.get(key).cloned().unwrap_or_default(),
        }
    };
    let mut text = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        text.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(len) => {
                text.push_str(&value_of(&rest[start + 1..start + len]));
                rest = &rest[start + len + 1..];
            }
            None => {
                text.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    text.push_str(rest);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first few field problems, and how many more: each violation has its own localized
/// message, and a status must stay small enough for a header.
fn summary(fields: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = fields
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("；");
    if fields.len() > SHOWN {
        text.push_str(&format!(" 等 {} 处错误", fields.len()));
    }
    text
}

/// The status as the caller should see it: the same code, message and details, completed as
/// the module documentation says. An OK status is returned as it is.
pub fn enrich(status: &Status, language: Language) -> Status {
    if status.code() == Code::Ok {
        return status.clone();
    }
    let mut details = status.get_error_details();
    let info = details.error_info().cloned();
    let (reason, metadata) = match &info {
        Some(info) => (info.reason.clone(), info.metadata.clone()),
        None => {
            let reason = code_reason(status.code()).to_owned();
            details.set_error_info(reason.clone(), DOMAIN, HashMap::new());
            (reason, HashMap::new())
        }
    };
    let mut fields = Vec::new();
    // The status travels in a header, whose size clients cap (a default tonic client refused
    // fifty violations each with its localized text): beyond this many bytes of localized
    // text, violations keep their reason and description only.
    let mut budget: usize = 4096;
    if let Some(bad_request) = details.bad_request().cloned() {
        let violations: Vec<FieldViolation> = bad_request
            .field_violations
            .into_iter()
            .map(|mut v| {
                let (field_reason, chinese) = field_reason(&v.description);
                if v.reason.is_empty() {
                    v.reason = field_reason.to_owned();
                }
                let shown_field = if v.field.is_empty() {
                    "请求"
                } else {
                    &v.field
                };
                fields.push(format!("{shown_field} {chinese}"));
                let text = match language {
                    Language::Chinese => format!("{shown_field}：{chinese}"),
                    Language::English => v.description.clone(),
                };
                if v.localized_message.is_none() && text.len() <= budget {
                    budget -= text.len();
                    v.localized_message = Some(LocalizedMessage::new(language.locale(), text));
                }
                v
            })
            .collect();
        details.set_bad_request(violations);
    }
    let message = match language {
        Language::English => status.message().to_owned(),
        Language::Chinese => {
            let template = CHINESE
                .iter()
                .find(|(r, _)| *r == reason)
                .or_else(|| {
                    let fallback = code_reason(status.code());
                    CHINESE.iter().find(|(r, _)| *r == fallback)
                })
                .map_or("请求未能完成", |(_, t)| t);
            fill(template, &metadata, &summary(&fields))
        }
    };
    details.set_localized_message(language.locale(), message);
    Status::with_error_details(status.code(), status.message().to_owned(), details)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServiceError;

    #[test]
    fn the_language_follows_accept_language_weights() {
        use Language::*;
        for (header, expected) in [
            (None, Chinese),
            (Some(""), Chinese),
            (Some("en"), English),
            (Some("en-US,en;q=0.9"), English),
            (Some("zh-CN,zh;q=0.9,en;q=0.8"), Chinese),
            (Some("en;q=0.5, zh-TW;q=0.7"), Chinese),
            (Some("fr-FR, en;q=0.3"), English),
            (Some("de"), Chinese),
            (Some("en;q=0, zh;q=0.1"), Chinese),
            (Some("EN-gb"), English),
            (Some("en;q=inf, zh;q=0.5"), Chinese),
            (Some("en;q=abc"), Chinese),
        ] {
            assert_eq!(
                Language::from_accept_language(header),
                expected,
                "{header:?}"
            );
        }
    }

    #[test]
    fn every_reason_the_api_documents_has_a_chinese_text() {
        let api = include_str!("../../../docs/api.md");
        let reasons: Vec<&str> = api
            .lines()
            .skip_while(|l| !l.starts_with("### Reasons"))
            .take_while(|l| !l.starts_with("### Field violation reasons"))
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        assert!(reasons.len() > 25, "the table was not found: {reasons:?}");
        for reason in reasons {
            assert!(
                CHINESE.iter().any(|(r, _)| *r == reason),
                "no Chinese text for {reason}"
            );
        }
    }

    #[test]
    fn a_status_without_error_info_gets_one_named_by_its_code() {
        let bare = Status::unimplemented("no such method");
        let enriched = enrich(&bare, Language::English);
        let details = enriched.get_error_details();
        let info = details.error_info().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("UNIMPLEMENTED", DOMAIN)
        );
        assert_eq!(enriched.message(), "no such method");
        let localized = details.localized_message().unwrap();
        assert_eq!(
            (localized.locale.as_str(), localized.message.as_str()),
            ("en", "no such method")
        );
    }

    #[test]
    fn chinese_messages_are_filled_from_the_metadata() {
        let status = Status::from(ServiceError::not_found("project", "projects/2026-0007"));
        let localized = enrich(&status, Language::Chinese)
            .get_error_details()
            .localized_message()
            .cloned()
            .unwrap();
        assert_eq!(localized.locale, "zh-CN");
        assert_eq!(localized.message, "未找到项目 projects/2026-0007");
        // A reason with metadata it does not have leaves no braces behind.
        let status = ServiceError::precondition("STATE_CONFLICT", "", "wrong state");
        let message = enrich(&Status::from(status), Language::Chinese)
            .get_error_details()
            .localized_message()
            .cloned()
            .unwrap()
            .message;
        assert!(!message.contains('{'), "{message}");
    }

    #[test]
    fn field_violations_get_reasons_and_their_own_localized_messages() {
        let status = Status::from(ServiceError::InvalidArgument(vec![
            FieldViolation::new("project.display_name", "is required"),
            FieldViolation::new("project.description", "must be at most 2000 characters"),
            FieldViolation::new("project.contacts[0].phone", "is not a phone number"),
            FieldViolation::new("parent", "must be projects/{code}, e.g. projects/2026-0007"),
            FieldViolation::new("x", "something unforeseen"),
        ]));
        let enriched = enrich(&status, Language::Chinese);
        let details = enriched.get_error_details();
        let violations = &details.bad_request().unwrap().field_violations;
        let reasons: Vec<&str> = violations.iter().map(|v| v.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "REQUIRED",
                "TOO_LONG",
                "INVALID_PHONE_NUMBER",
                "INVALID_NAME",
                "INVALID_VALUE"
            ]
        );
        let first = violations[0].localized_message.as_ref().unwrap();
        assert_eq!(first.message, "project.display_name：必填");
        assert_eq!(
            violations[3].localized_message.as_ref().unwrap().message,
            "parent：名称格式不正确，应为 projects/{code}"
        );
        // The summary keeps a value's braces too.
        let summary = enrich(
            &Status::from(ServiceError::field("parent", "must be projects/{code}")),
            Language::Chinese,
        );
        assert_eq!(
            summary
                .get_error_details()
                .localized_message()
                .unwrap()
                .message,
            "请求有误：parent 名称格式不正确，应为 projects/{code}"
        );
        // The descriptions stay as they were, for English readers and logs.
        assert_eq!(violations[1].description, "must be at most 2000 characters");
        let whole = details.localized_message().unwrap();
        assert!(
            whole
                .message
                .starts_with("请求有误：project.display_name 必填"),
            "{}",
            whole.message
        );
        let english = enrich(&status, Language::English);
        let english = english.get_error_details();
        assert_eq!(
            english.bad_request().unwrap().field_violations[2]
                .localized_message
                .as_ref()
                .unwrap()
                .message,
            "is not a phone number"
        );
    }

    #[test]
    fn enriching_twice_changes_nothing_more() {
        let status = Status::from(ServiceError::field("name", "is required"));
        let once = enrich(&status, Language::Chinese);
        let twice = enrich(&once, Language::Chinese);
        assert_eq!(once.details(), twice.details());
    }
}
