//! `ImportExperts`: rosters in CSV and XLSX, all rows or none.

use govit_experts::DrawPolicy;
use govit_platform::Role;
use govit_proto::experts::v1::{self as epb};

use crate::helpers::*;

const HEADER: &str =
    "编号,姓名,统一社会信用代码,工作单位,来源,职称,专业类别,电话,邮箱,身份证号,聘期开始,聘期结束";

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
        .import_experts(epb::ImportExpertsRequest {
            request_id: String::new(),
            format: epb::RosterFormat::Csv as i32,
            content: csv.clone().into_bytes(),
            validate_only: false,
        })
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
        .import_experts(epb::ImportExpertsRequest {
            request_id: String::new(),
            format: epb::RosterFormat::Csv as i32,
            content: csv.into_bytes(),
            validate_only: false,
        })
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
        .import_experts(epb::ImportExpertsRequest {
            request_id: String::new(),
            format: epb::RosterFormat::Csv as i32,
            content: csv.into_bytes(),
            validate_only: false,
        })
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
        .import_experts(epb::ImportExpertsRequest {
            request_id: String::new(),
            format: epb::RosterFormat::Xlsx as i32,
            content: bytes.clone(),
            validate_only: false,
        })
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
            request_id: String::new(),
            format: epb::RosterFormat::Xlsx as i32,
            content: good.clone(),
            validate_only: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(validated.created, 1);
    assert_eq!(r.count("experts").await, 0, "validate_only writes nothing");
    admin
        .clone()
        .import_experts(epb::ImportExpertsRequest {
            request_id: String::new(),
            format: epb::RosterFormat::Xlsx as i32,
            content: good,
            validate_only: false,
        })
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
