//! Expert rosters as offices keep them: CSV or XLSX, a header row in English or Chinese, one
//! expert per row. Parsing turns each row into the same `Expert` message the API takes, and
//! remembers where each value came from so errors name the line and column.

use std::{collections::BTreeMap, io::Cursor};

use calamine::{Data, Reader, Xlsx};
use govit_platform::time::date_to_proto;
use govit_proto::experts::v1 as pb;

/// The columns, each with the header names accepted for it (lower-cased for matching).
const COLUMNS: &[(&str, &[&str])] = &[
    (
        "expert_id",
        &["expert_id", "id", "编号", "專家編號", "专家编号", "編號"],
    ),
    ("display_name", &["name", "display_name", "姓名"]),
    (
        "employer_credit_code",
        &[
            "employer_credit_code",
            "credit_code",
            "统一社会信用代码",
            "統一社會信用代碼",
            "单位信用代码",
        ],
    ),
    (
        "employer_name",
        &["employer", "employer_name", "工作单位", "工作單位", "单位"],
    ),
    ("source", &["source", "来源", "來源"]),
    ("title", &["title", "职称", "職稱"]),
    (
        "categories",
        &[
            "categories",
            "category",
            "专业类别",
            "專業類別",
            "类别",
            "類別",
        ],
    ),
    ("phone", &["phone", "电话", "電話", "手机", "手機"]),
    ("email", &["email", "邮箱", "郵箱", "电子邮箱"]),
    (
        "id_number",
        &["id_number", "身份证号", "身份證號", "身份证号码"],
    ),
    (
        "appointment_start_date",
        &[
            "appointment_start",
            "appointment_start_date",
            "聘期开始",
            "聘期開始",
        ],
    ),
    (
        "appointment_end_date",
        &[
            "appointment_end",
            "appointment_end_date",
            "聘期结束",
            "聘期結束",
        ],
    ),
    ("status", &["status", "状态", "狀態"]),
];

const REQUIRED: &[&str] = &[
    "expert_id",
    "display_name",
    "employer_credit_code",
    "employer_name",
    "source",
    "categories",
    "phone",
    "id_number",
    "appointment_start_date",
    "appointment_end_date",
];

/// One data row: the expert it describes and, per field, its column label for messages.
pub struct RosterRow {
    /// 1-based line (row) number in the file, the header being line 1.
    pub line: usize,
    pub expert: pb::Expert,
    /// field → e.g. `column D (电话)`
    pub columns: BTreeMap<&'static str, String>,
}

/// A problem with the file as a whole or with one cell, for a field violation.
pub struct RosterProblem {
    pub field: String,
    pub description: String,
}

fn column_label(index: usize, header: &str, letters: bool) -> String {
    if letters {
        let mut n = index + 1;
        let mut s = String::new();
        while n > 0 {
            let r = (n - 1) % 26;
            s.insert(0, (b'A' + r as u8) as char);
            n = (n - 1) / 26;
        }
        format!("column {s} ({header})")
    } else {
        format!("column {} ({header})", index + 1)
    }
}

fn parse_source(s: &str) -> i32 {
    let v = s.trim().to_ascii_uppercase();
    let source = match v.as_str() {
        "AUTONOMOUS_REGION" | "REGION" | "自治区" | "自治區" => {
            pb::ExpertSource::AutonomousRegion
        }
        "CORPS" | "兵团" | "兵團" => pb::ExpertSource::Corps,
        "IT_ENTERPRISE" | "ENTERPRISE" | "企业" | "企業" | "IT企业" => {
            pb::ExpertSource::ItEnterprise
        }
        "CITY" | "市" | "本市" | "市级" | "市級" => pb::ExpertSource::City,
        "UNIVERSITY" | "高校" => pb::ExpertSource::University,
        "OTHER" | "其他" => pb::ExpertSource::Other,
        "" => pb::ExpertSource::Unspecified,
        // An unknown word becomes an unknown enum value, reported by the field rules.
        _ => return -1,
    };
    source as i32
}

fn parse_status(s: &str) -> Option<pb::ExpertStatus> {
    match s.trim().to_ascii_uppercase().as_str() {
        "" | "ACTIVE" | "在聘" | "有效" => Some(pb::ExpertStatus::Active),
        "SUSPENDED" | "暂停" | "暫停" => Some(pb::ExpertStatus::Suspended),
        "RETIRED" | "退出" | "解聘" => Some(pb::ExpertStatus::Retired),
        _ => None,
    }
}

fn parse_date(s: &str) -> Option<chrono::NaiveDate> {
    let s = s.trim();
    [
        "%Y-%m-%d",
        "%Y/%m/%d",
        "%Y.%m.%d",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ]
    .iter()
    .find_map(|f| {
        chrono::NaiveDate::parse_from_str(s, f).ok().or_else(|| {
            chrono::NaiveDateTime::parse_from_str(s, f)
                .ok()
                .map(|d| d.date())
        })
    })
}

/// Parses a roster. Structural problems (an unreadable file, unknown or missing columns) come
/// back as problems; cell values are checked later by the same rules as `CreateExpert`.
pub fn parse(
    format: pb::RosterFormat,
    content: &[u8],
) -> Result<Vec<RosterRow>, Vec<RosterProblem>> {
    let (table, letters) = match format {
        pb::RosterFormat::Csv => (read_csv(content)?, false),
        pb::RosterFormat::Xlsx => (read_xlsx(content)?, true),
        pb::RosterFormat::Unspecified => {
            return Err(vec![RosterProblem {
                field: "format".into(),
                description: "must be CSV or XLSX".into(),
            }]);
        }
    };
    let mut lines = table.into_iter();
    let Some((_, header)) = lines.next() else {
        return Err(vec![RosterProblem {
            field: "content".into(),
            description: "the file is empty".into(),
        }]);
    };
    let fields = header_fields(&header, letters)?;
    let rows: Vec<RosterRow> = lines
        .filter(|(_, cells)| !cells.iter().all(|c| c.trim().is_empty()))
        .map(|(line, cells)| read_row(line, &cells, &fields, &header, letters))
        .collect();
    if rows.is_empty() {
        return Err(vec![RosterProblem {
            field: "content".into(),
            description: "the file has a header but no experts".into(),
        }]);
    }
    Ok(rows)
}

/// The field of each column of the header row; problems for unknown, repeated and missing
/// columns.
fn header_fields(
    header: &[String],
    letters: bool,
) -> Result<Vec<Option<&'static str>>, Vec<RosterProblem>> {
    let header_problem = |description: String| RosterProblem {
        field: "content.header".into(),
        description,
    };
    let mut problems = Vec::new();
    let mut fields: Vec<Option<&'static str>> = Vec::new();
    for (i, h) in header.iter().enumerate() {
        let wanted = h.trim().to_lowercase();
        let found = COLUMNS
            .iter()
            .find(|(_, names)| names.contains(&wanted.as_str()))
            .map(|(f, _)| *f);
        if found.is_none() && !wanted.is_empty() {
            problems.push(header_problem(format!(
                "line 1, {}: unknown column",
                column_label(i, h, letters)
            )));
        }
        if found.is_some() && fields.contains(&found) {
            problems.push(header_problem(format!(
                "line 1, {}: column appears twice",
                column_label(i, h, letters)
            )));
        }
        fields.push(found);
    }
    for required in REQUIRED {
        if !fields.contains(&Some(required)) {
            problems.push(header_problem(format!("line 1: no column for {required}")));
        }
    }
    if problems.is_empty() {
        Ok(fields)
    } else {
        Err(problems)
    }
}

/// One data row as the expert it describes.
fn read_row(
    line: usize,
    cells: &[String],
    fields: &[Option<&'static str>],
    header: &[String],
    letters: bool,
) -> RosterRow {
    let mut expert = pb::Expert {
        employer: Some(pb::Employer::default()),
        ..Default::default()
    };
    let mut columns = BTreeMap::new();
    for (i, field) in fields.iter().enumerate() {
        let Some(field) = field else { continue };
        let value = cells
            .get(i)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        columns.insert(*field, column_label(i, &header[i], letters));
        set_field(&mut expert, field, value);
    }
    if !fields.contains(&Some("status")) {
        expert.status = pb::ExpertStatus::Active as i32;
    }
    RosterRow {
        line,
        expert,
        columns,
    }
}

fn set_field(expert: &mut pb::Expert, field: &str, value: String) {
    let employer = expert.employer.get_or_insert_with(Default::default);
    match field {
        "expert_id" => expert.expert_id = value,
        "display_name" => expert.display_name = value,
        "employer_credit_code" => employer.credit_code = value,
        "employer_name" => employer.name = value,
        "source" => expert.source = parse_source(&value),
        "title" => expert.title = value,
        "categories" => {
            expert.categories = value
                .split([';', '；', ',', '，', '、', '|'])
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect()
        }
        "phone" => expert.phone = value,
        "email" => expert.email = value,
        "id_number" => expert.id_number = value.to_ascii_uppercase(),
        "appointment_start_date" => {
            expert.appointment_start_date = parse_date(&value).map(date_to_proto)
        }
        "appointment_end_date" => {
            expert.appointment_end_date = parse_date(&value).map(date_to_proto)
        }
        "status" => expert.status = parse_status(&value).map(|s| s as i32).unwrap_or(-1),
        _ => {}
    }
}

type Table = Vec<(usize, Vec<String>)>;

fn read_csv(content: &[u8]) -> Result<Table, Vec<RosterProblem>> {
    // Excel writes a BOM at the start of UTF-8 CSV.
    let content = content.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(content);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(content);
    let mut table = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            vec![RosterProblem {
                field: "content".into(),
                description: format!("line {line}: not readable as UTF-8 CSV: {e}"),
            }]
        })?;
        let line = record
            .position()
            .map(|p| p.line() as usize)
            .unwrap_or(table.len() + 1);
        table.push((line, record.iter().map(str::to_owned).collect()));
    }
    Ok(table)
}

fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        // Whole numbers typed into a cell (IDs, phones) come back as floats.
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) => dt
            .as_datetime()
            .map(|d| d.date().to_string())
            .unwrap_or_default(),
        Data::Error(e) => format!("#ERROR {e:?}"),
    }
}

fn read_xlsx(content: &[u8]) -> Result<Table, Vec<RosterProblem>> {
    let unreadable = |e: String| {
        vec![RosterProblem {
            field: "content".into(),
            description: format!("not a readable XLSX workbook: {e}"),
        }]
    };
    let mut workbook: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(content))
        .map_err(|e: calamine::XlsxError| unreadable(e.to_string()))?;
    let range = workbook
        .worksheet_range_at(0)
        .ok_or_else(|| unreadable("it has no sheet".into()))?
        .map_err(|e| unreadable(e.to_string()))?;
    let first_row = range.start().map(|(r, _)| r as usize).unwrap_or(0);
    Ok(range
        .rows()
        .enumerate()
        .map(|(i, row)| (first_row + i + 1, row.iter().map(cell_text).collect()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_headers_and_separators_are_understood() {
        let csv = "编号,姓名,统一社会信用代码,工作单位,来源,职称,专业类别,电话,邮箱,身份证号,聘期开始,聘期结束\n\
                   x1,王伟,91350100M000100Y43,某公司,企业,高工,software；network,13812345678,,11010519491231002X,2026/1/1,2028-12-31\n";
        let rows = parse(pb::RosterFormat::Csv, csv.as_bytes())
            .map_err(|p| p[0].description.clone())
            .unwrap();
        assert_eq!(rows.len(), 1);
        let e = &rows[0].expert;
        assert_eq!(rows[0].line, 2);
        assert_eq!(e.categories, ["software", "network"]);
        assert_eq!(e.source, pb::ExpertSource::ItEnterprise as i32);
        assert_eq!(e.appointment_start_date.as_ref().unwrap().month, 1);
        assert_eq!(rows[0].columns["phone"], "column 8 (电话)");
    }

    #[test]
    fn unknown_and_missing_columns_are_reported() {
        let problems = parse(
            pb::RosterFormat::Csv,
            "id,name,shoe size\nx,y,42\n".as_bytes(),
        )
        .err()
        .unwrap();
        assert!(problems.iter().any(|p| {
            p.description
                .contains("column 3 (shoe size): unknown column")
        }));
        assert!(
            problems
                .iter()
                .any(|p| p.description.contains("no column for phone"))
        );
    }

    #[test]
    fn spreadsheet_columns_are_lettered() {
        assert_eq!(column_label(0, "id", true), "column A (id)");
        assert_eq!(column_label(27, "x", true), "column AB (x)");
    }
}
