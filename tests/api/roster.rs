//! `ImportExperts`: rosters in CSV and XLSX, all rows or none.

use govit_experts::DrawPolicy;
use govit_platform::Role;
use govit_proto::experts::v1::{self as epb};

use crate::helpers::*;

const HEADER: &str =
    "编号,姓名,统一社会信用代码,工作单位,来源,职称,专业类别,电话,邮箱,身份证号,聘期开始,聘期结束";

/// A roster to import (not a dry run), without a request id.
fn roster(format: epb::RosterFormat, content: impl Into<Vec<u8>>) -> epb::ImportExpertsRequest {
    epb::ImportExpertsRequest {
        request_id: String::new(),
        format: format as i32,
        content: content.into(),
        validate_only: false,
    }
}

fn line(id: &str, categories: &str, phone: &str, id_number: &str) -> String {
    format!(
        "{id},王{id},{},某信息公司,企业,高级工程师,{categories},{phone},,{id_number},2025-01-01,2028-12-31",
        credit_code(20)
    )
}

#[tokio::test]
async fn a_csv_roster_with_chinese_headers_imports_and_reimports_as_updates() {
    let r = spawn_registry(DrawPolicy::default()).await;
    r.category("software").await;
    r.category("network").await;
    let csv = format!(
        "{HEADER}\n{}\n{}\n",
        line("r-1", "software；network", "13800000001", &id_number(1)),
        line("r-2", "network", "0991-2345678", &id_number(2))
    );
    let admin = r.client(Role::RegistryAdmin);
    let result = admin
        .clone()
        .import_experts(roster(epb::RosterFormat::Csv, csv.clone().into_bytes()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((result.created, result.updated), (2, 0));
    let e = admin
        .clone()
        .get_expert(epb::GetExpertRequest {
            name: "experts/r-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(e.categories, ["network", "software"]);
    assert_eq!(e.display_name, "王r-1");
    let again = admin
        .clone()
        .import_experts(roster(epb::RosterFormat::Csv, csv.into_bytes()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.created, again.updated), (0, 2));
}

#[tokio::test]
async fn a_roster_with_bad_rows_names_each_line_and_column_and_imports_nothing() {
    let r = spawn_registry(DrawPolicy::default()).await;
    r.category("software").await;
    let before = (r.log_size().await, r.count("experts").await);
    let mut bad_id = id_number(3);
    bad_id.replace_range(17.., if bad_id.ends_with('1') { "2" } else { "1" });
    let csv = format!(
        "{HEADER}\n{}\n{}\n{}\n{}\n",
        line("ok-1", "software", "13800000001", &id_number(1)),
        line("bad-2", "software", "not a phone", &id_number(2)),
        line("bad-3", "nosuch", "13800000003", &bad_id),
        line("ok-1", "software", "13800000004", &id_number(4)),
    );
    let status = r
        .client(Role::RegistryAdmin)
        .import_experts(roster(epb::RosterFormat::Csv, csv.into_bytes()))
        .await
        .unwrap_err();
    let fields = violated_fields(&status);
    assert_eq!(
        fields,
        [
            "rows[3].phone",
            "rows[4].id_number",
            "rows[4].categories[0]",
            "rows[5].expert_id"
        ]
    );
    let message = status.message();
    assert!(
        message.contains("line 3, column 8 (电话): is not a phone number"),
        "{message}"
    );
    assert!(
        message.contains("line 4, column 10 (身份证号)"),
        "{message}"
    );
    assert!(
        message.contains("line 4, column 7 (专业类别): no category nosuch"),
        "{message}"
    );
    assert!(
        message.contains("line 5, column 1 (编号): appears on an earlier line too"),
        "{message}"
    );
    assert_eq!(
        (r.log_size().await, r.count("experts").await),
        before,
        "nothing imported"
    );
}

#[tokio::test]
async fn an_xlsx_roster_imports_with_date_cells_and_lettered_columns() {
    let r = spawn_registry(DrawPolicy::default()).await;
    r.category("software").await;
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in HEADER.split(',').enumerate() {
        sheet.write_string(0, c as u16, h).unwrap();
    }
    let date_format = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
    let rows = [
        ("x-1", "13800000001", id_number(5)),
        ("x-2", "bad phone", id_number(6)),
    ];
    for (i, (id, phone, idn)) in rows.iter().enumerate() {
        let row = i as u32 + 1;
        for (c, v) in [
            id.to_string(),
            format!("李{id}"),
            credit_code(21),
            "某大学".into(),
            "高校".into(),
            "教授".into(),
            "software".into(),
            phone.to_string(),
            String::new(),
            idn.clone(),
        ]
        .iter()
        .enumerate()
        {
            sheet.write_string(row, c as u16, v).unwrap();
        }
        let start = rust_xlsxwriter::ExcelDateTime::from_ymd(2025, 3, 1).unwrap();
        let end = rust_xlsxwriter::ExcelDateTime::from_ymd(2027, 2, 28).unwrap();
        sheet
            .write_datetime_with_format(row, 10, &start, &date_format)
            .unwrap();
        sheet
            .write_datetime_with_format(row, 11, &end, &date_format)
            .unwrap();
    }
    let bytes = book.save_to_buffer().unwrap();
    let admin = r.client(Role::RegistryAdmin);
    let status = admin
        .clone()
        .import_experts(roster(epb::RosterFormat::Xlsx, bytes.clone()))
        .await
        .unwrap_err();
    assert!(
        status.message().contains("line 3, column H (电话)"),
        "{}",
        status.message()
    );
    assert_eq!(r.count("experts").await, 0);

    // Fix the row in the sheet and import again.
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in HEADER.split(',').enumerate() {
        sheet.write_string(0, c as u16, h).unwrap();
    }
    for (c, v) in [
        "x-1",
        "李x-1",
        &credit_code(21),
        "某大学",
        "高校",
        "教授",
        "software",
        "13800000001",
        "",
        &id_number(5),
    ]
    .iter()
    .enumerate()
    {
        sheet.write_string(1, c as u16, *v).unwrap();
    }
    sheet
        .write_datetime_with_format(
            1,
            10,
            rust_xlsxwriter::ExcelDateTime::from_ymd(2025, 3, 1).unwrap(),
            &date_format,
        )
        .unwrap();
    sheet
        .write_datetime_with_format(
            1,
            11,
            rust_xlsxwriter::ExcelDateTime::from_ymd(2027, 2, 28).unwrap(),
            &date_format,
        )
        .unwrap();
    let good = book.save_to_buffer().unwrap();
    let validated = admin
        .clone()
        .import_experts(epb::ImportExpertsRequest {
            validate_only: true,
            ..roster(epb::RosterFormat::Xlsx, good.clone())
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(validated.created, 1);
    assert_eq!(r.count("experts").await, 0, "validate_only writes nothing");
    admin
        .clone()
        .import_experts(roster(epb::RosterFormat::Xlsx, good))
        .await
        .unwrap();
    let e = admin
        .clone()
        .get_expert(epb::GetExpertRequest {
            name: "experts/x-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(e.appointment_end_date, date(2027, 2, 28));
    assert_eq!(e.source, epb::ExpertSource::University as i32);
}

/// A roster of `rows` experts whose names, employers and titles are as long as the rules
/// allow, so that a few thousand rows exceed the 4 MiB a unary call may carry.
fn large_roster(rows: u32) -> Vec<u8> {
    let employer: String = "新疆维吾尔自治区信息技术有限公司".repeat(13)[..]
        .chars()
        .take(200)
        .collect();
    let title: String = "高级工程师".repeat(20);
    let mut csv = format!("{HEADER}\n");
    for i in 0..rows {
        let born = 19_600_101 + (i / 1000) * 100;
        let id = govit_platform::resident_id::with_check_character(&format!(
            "650102{born}{:03}",
            i % 1000
        ))
        .unwrap();
        let name: String = format!("专家{i}")
            .chars()
            .chain("某".repeat(100).chars())
            .take(100)
            .collect();
        csv.push_str(&format!(
            "big-{i},{name},{},{employer},企业,{title},software,139{i:08},,{id},2025-01-01,2028-12-31\n",
            credit_code(20)
        ));
    }
    csv.into_bytes()
}

fn streamed(
    request: epb::ImportExpertsRequest,
    chunk_bytes: usize,
) -> impl tokio_stream::Stream<Item = epb::StreamImportExpertsRequest> {
    use epb::stream_import_experts_request::Part;
    let content = request.content.clone();
    let first = epb::StreamImportExpertsRequest {
        part: Some(Part::Request(epb::ImportExpertsRequest {
            content: Vec::new(),
            ..request
        })),
    };
    let rest: Vec<_> = content
        .chunks(chunk_bytes)
        .map(|c| epb::StreamImportExpertsRequest {
            part: Some(Part::Chunk(c.to_vec())),
        })
        .collect();
    tokio_stream::iter(std::iter::once(first).chain(rest))
}

#[tokio::test]
async fn a_roster_larger_than_one_message_imports_in_one_streamed_call_and_one_log_batch() {
    let r = spawn_registry(DrawPolicy::default()).await;
    r.category("software").await;
    let log_before = r.log_size().await;
    let csv = large_roster(3_600);
    assert!(csv.len() > 4 * 1024 * 1024, "{} bytes", csv.len());
    let request = roster(epb::RosterFormat::Csv, csv);
    let admin = r.client(Role::RegistryAdmin);

    // One message cannot carry it.
    let refused = admin
        .clone()
        .import_experts(request.clone())
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert_eq!(error_reason(&refused), "MESSAGE_TOO_LARGE");
    assert_eq!(r.count("experts").await, 0);

    let result = admin
        .clone()
        .stream_import_experts(streamed(request.clone(), 1024 * 1024))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((result.created, result.updated), (3_600, 0));
    let last = admin
        .clone()
        .get_expert(epb::GetExpertRequest {
            name: "experts/big-3599".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(last.categories, ["software"]);
    assert_eq!(last.title, "高级工程师".repeat(20));

    // Every expert has its entry, and the signed head is the root of exactly those leaves.
    let inspector = r.client(Role::Inspector);
    let head = inspector
        .clone()
        .get_log_head(epb::GetLogHeadRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(head.tree_size as i64, log_before + 3_600);
    let mut leaves = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = inspector
            .clone()
            .list_log_entries(epb::ListLogEntriesRequest {
                page_size: 1000,
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        for e in &page.entries {
            assert_eq!(
                hex::encode(govit_draw::merkle::leaf_hash(e.entry_json.as_bytes())),
                e.leaf_hash
            );
            leaves.push(hash(&e.leaf_hash));
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(leaves.len() as u64, head.tree_size);
    assert_eq!(
        hex::encode(govit_draw::merkle::root(&leaves)),
        head.root_hash,
        "the stored subtrees of the batch give the head every leaf gives"
    );
    let middle = 1_777;
    let proof = inspector
        .clone()
        .get_inclusion_proof(epb::GetInclusionProofRequest {
            index: middle,
            tree_size: head.tree_size,
        })
        .await
        .unwrap()
        .into_inner();
    let path: Vec<_> = proof.hashes.iter().map(|h| hash(h)).collect();
    assert!(govit_draw::merkle::verify_inclusion(
        middle,
        head.tree_size,
        &leaves[middle as usize],
        &path,
        &hash(&head.root_hash)
    ));

    // The same roster again updates every expert, streamed in other chunk sizes.
    let again = admin
        .clone()
        .stream_import_experts(streamed(request, 333_333))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.created, again.updated), (0, 3_600));
    assert_eq!(r.log_size().await, log_before + 7_200);
}

#[tokio::test]
async fn a_streamed_import_checks_the_role_first_and_wants_the_request_first() {
    let r = spawn_registry(DrawPolicy::default()).await;
    r.category("software").await;
    let request = roster(
        epb::RosterFormat::Csv,
        format!(
            "{HEADER}\n{}\n",
            line("s-1", "software", "13800000001", &id_number(1))
        )
        .into_bytes(),
    );
    for role in [
        Role::Office,
        Role::Inspector,
        Role::Supervisor,
        Role::Applicant,
        Role::Service,
    ] {
        // The stream sends the request and then stays open: the refusal must come before the
        // server waits for any of the file.
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        sender
            .send(epb::StreamImportExpertsRequest {
                part: Some(epb::stream_import_experts_request::Part::Request(
                    request.clone(),
                )),
            })
            .await
            .unwrap();
        let mut client = r.client(role);
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            client.stream_import_experts(tokio_stream::wrappers::ReceiverStream::new(receiver)),
        )
        .await
        .expect("refused before the file is read");
        assert_eq!(
            answer.unwrap_err().code(),
            tonic::Code::PermissionDenied,
            "{role}"
        );
        drop(sender);
    }
    let admin = r.client(Role::RegistryAdmin);
    let headless = admin
        .clone()
        .stream_import_experts(tokio_stream::iter(vec![epb::StreamImportExpertsRequest {
            part: Some(epb::stream_import_experts_request::Part::Chunk(
                request.content.clone(),
            )),
        }]))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&headless), ["request"]);
    let twice = admin
        .clone()
        .stream_import_experts(tokio_stream::iter(vec![
            epb::StreamImportExpertsRequest {
                part: Some(epb::stream_import_experts_request::Part::Request(
                    request.clone(),
                )),
            },
            epb::StreamImportExpertsRequest {
                part: Some(epb::stream_import_experts_request::Part::Request(
                    request.clone(),
                )),
            },
        ]))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&twice), ["request"]);
    assert_eq!(r.count("experts").await, 0);

    // A resend with its request id, by either call, answers the first import.
    let with_id = epb::ImportExpertsRequest {
        request_id: "3f0b8f52-6c39-4c1e-9a54-2f1b7a0c9d11".into(),
        ..request
    };
    let first = admin
        .clone()
        .stream_import_experts(streamed(with_id.clone(), 7))
        .await
        .unwrap()
        .into_inner();
    let resent = admin
        .clone()
        .import_experts(with_id)
        .await
        .unwrap()
        .into_inner();
    assert_eq!((first.created, resent.created), (1, 1));
    assert_eq!(r.count("experts").await, 1);
}

fn hash(hex_text: &str) -> govit_draw::merkle::Hash {
    hex::decode(hex_text).unwrap().try_into().unwrap()
}

#[tokio::test]
async fn an_import_sent_while_another_is_on_its_way_is_refused_not_queued() {
    let r = spawn_registry(DrawPolicy::default()).await;
    r.category("software").await;
    let content = format!(
        "{HEADER}\n{}\n",
        line("q-1", "software", "13800000001", &id_number(1))
    )
    .into_bytes();
    let request = roster(epb::RosterFormat::Csv, Vec::new());
    let admin = r.client(Role::RegistryAdmin);
    let dry_run = epb::ImportExpertsRequest {
        content: content.clone(),
        validate_only: true,
        ..request.clone()
    };
    // The first import sends its request and then waits, as a slow upload would. Once it
    // holds its turn a second import is refused at once; a dry run that came first (and
    // changed nothing) would have refused the first instead, which is then sent again.
    let mut holding = None;
    for _ in 0..50 {
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        sender
            .send(epb::StreamImportExpertsRequest {
                part: Some(epb::stream_import_experts_request::Part::Request(
                    request.clone(),
                )),
            })
            .await
            .unwrap();
        let mut client = admin.clone();
        let first = tokio::spawn(async move {
            client
                .stream_import_experts(tokio_stream::wrappers::ReceiverStream::new(receiver))
                .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if first.is_finished() {
            continue;
        }
        match admin.clone().import_experts(dry_run.clone()).await {
            Err(refused) => {
                holding = Some((sender, first, refused));
                break;
            }
            Ok(_) => {
                drop(sender);
                let _ = first.await;
            }
        }
    }
    let (sender, first, refused) =
        holding.expect("a second import is refused while the first is on its way");
    assert_eq!(refused.code(), tonic::Code::Aborted, "{refused:?}");
    assert_eq!(error_reason(&refused), "IMPORT_IN_PROGRESS");
    assert!(
        !first.is_finished(),
        "the first is still waiting for its file"
    );
    // The first finishes, and then imports go through again.
    sender
        .send(epb::StreamImportExpertsRequest {
            part: Some(epb::stream_import_experts_request::Part::Chunk(content)),
        })
        .await
        .unwrap();
    drop(sender);
    let done = first.await.unwrap().unwrap().into_inner();
    assert_eq!((done.created, done.updated), (1, 0));
    let after = admin
        .clone()
        .import_experts(dry_run)
        .await
        .unwrap()
        .into_inner();
    assert_eq!((after.created, after.updated), (0, 1));
}
