//! Categories: the taxonomy experts are tagged with and drawn by, a tree without cycles.

use std::collections::BTreeMap;

use govit_platform::{
    ServiceError, ServiceResult, Violations,
    paging::Page,
    time::{now, to_stored},
    validate::is_code,
};
use govit_proto::experts::v1 as pb;

use crate::{
    ExpertsService, internal,
    model::CategoryRow,
    validation::{self as check, parse_name},
};

/// A category to create, its fields checked.
pub struct NewCategory {
    row: CategoryRow,
    /// The parent's resource name, as the request gave it.
    parent_name: String,
}

impl TryFrom<pb::CreateCategoryRequest> for NewCategory {
    type Error = ServiceError;

    fn try_from(req: pb::CreateCategoryRequest) -> ServiceResult<Self> {
        let c = req.category.unwrap_or_default();
        let mut v = Violations::new();
        check::code(&mut v, "category.code", &c.code);
        check::text(&mut v, "category.display_name", &c.display_name, 100);
        check::optional_text(&mut v, "category.description", &c.description, 2000);
        let parent = if c.parent.is_empty() {
            None
        } else {
            Some(parse_name("category.parent", &c.parent, "categories"))
        };
        if let Some(Err(_)) = &parent {
            v.add("category.parent", "must be categories/{code}");
        }
        v.finish()?;
        let at = to_stored(now());
        Ok(NewCategory {
            row: CategoryRow {
                code: c.code.clone(),
                display_name: c.display_name.trim().to_owned(),
                description: c.description.clone(),
                parent: parent.transpose()?,
                active: 1,
                version: 1,
                create_time: at.clone(),
                update_time: at,
            },
            parent_name: c.parent,
        })
    }
}

/// The new values of the fields an update mask names.
#[derive(Default)]
struct CategoryPatch {
    display_name: Option<String>,
    description: Option<String>,
    active: Option<bool>,
    parent: Option<Option<String>>,
}

impl CategoryPatch {
    fn read(v: &mut Violations, c: &pb::Category, paths: &[String]) -> Self {
        let mut patch = CategoryPatch::default();
        for path in paths {
            let field = format!("category.{path}");
            match path.as_str() {
                "display_name" => {
                    check::text(v, &field, &c.display_name, 100);
                    patch.display_name = Some(c.display_name.trim().to_owned());
                }
                "description" => {
                    check::optional_text(v, &field, &c.description, 2000);
                    patch.description = Some(c.description.clone());
                }
                "active" => patch.active = Some(c.active),
                "parent" if c.parent.is_empty() => patch.parent = Some(None),
                "parent" => match parse_name(&field, &c.parent, "categories") {
                    Ok(p) => patch.parent = Some(Some(p)),
                    Err(_) => v.add(field, "must be categories/{code}"),
                },
                other => check::not_updatable(v, other),
            }
        }
        patch
    }

    fn apply_to(self, row: &mut CategoryRow) {
        if let Some(display_name) = self.display_name {
            row.display_name = display_name;
        }
        if let Some(description) = self.description {
            row.description = description;
        }
        if let Some(active) = self.active {
            row.active = i64::from(active);
        }
        if let Some(parent) = self.parent {
            row.parent = parent;
        }
    }
}

/// A change to a category. `problems` holds what is wrong with the request; they are reported
/// once the category is found, as a missing category is the first thing to hear of.
pub struct CategoryChange {
    code: String,
    name: String,
    paths: Vec<String>,
    expected: i64,
    patch: CategoryPatch,
    problems: Violations,
}

impl TryFrom<pb::UpdateCategoryRequest> for CategoryChange {
    type Error = ServiceError;

    fn try_from(req: pb::UpdateCategoryRequest) -> ServiceResult<Self> {
        let c = req.category.unwrap_or_default();
        let code = parse_name("category.name", &c.name, "categories")?;
        let mut problems = Violations::new();
        let paths = check::mask_paths(&mut problems, req.update_mask);
        let expected = check::etag(&mut problems, "category.etag", &c.etag);
        let patch = CategoryPatch::read(&mut problems, &c, &paths);
        Ok(CategoryChange {
            code,
            name: c.name,
            paths,
            expected,
            patch,
            problems,
        })
    }
}

/// A violation for every category that does not exist or is inactive.
pub fn category_violations(
    known: &BTreeMap<String, CategoryRow>,
    v: &mut Violations,
    field: impl Fn(usize) -> String,
    categories: &[String],
) {
    for (i, c) in categories.iter().enumerate() {
        match known.get(c) {
            None if is_code(c) => v.add(field(i), format!("no category {c}")),
            Some(row) if row.active == 0 => v.add(field(i), format!("category {c} is inactive")),
            _ => {}
        }
    }
}

impl ExpertsService {
    /// Adds a violation for every category that does not exist or is inactive.
    pub(crate) async fn check_categories(
        &self,
        v: &mut Violations,
        field: impl Fn(usize) -> String,
        categories: &[String],
    ) -> ServiceResult<()> {
        let known = self.store.categories(categories).await?;
        category_violations(&known, v, field, categories);
        Ok(())
    }

    pub(crate) async fn add_category(&self, new: NewCategory) -> ServiceResult<pb::Category> {
        if let Some(p) = &new.row.parent {
            self.store
                .get_category(p)
                .await?
                .ok_or_else(|| ServiceError::not_found("category", new.parent_name.clone()))?;
        }
        self.store.create_category(&new.row).await?;
        new.row.to_proto().map_err(internal)
    }

    pub(crate) async fn category_named(
        &self,
        code: &str,
        name: &str,
    ) -> ServiceResult<pb::Category> {
        let row = self
            .store
            .get_category(code)
            .await?
            .ok_or_else(|| ServiceError::not_found("category", name.to_owned()))?;
        row.to_proto().map_err(internal)
    }

    pub(crate) async fn category_page(
        &self,
        req: &pb::ListCategoriesRequest,
    ) -> ServiceResult<pb::ListCategoriesResponse> {
        let page = Page::parse(
            req.page_size,
            &req.page_token,
            &format!("categories inactive={}", req.show_inactive),
        )?;
        let mut rows = self
            .store
            .list_categories(req.show_inactive, page.after.as_deref(), page.fetch_limit())
            .await?;
        let next_page_token = page.finish(&mut rows, |r| r.code.clone());
        Ok(pb::ListCategoriesResponse {
            categories: rows
                .iter()
                .map(CategoryRow::to_proto)
                .collect::<Result<_, _>>()
                .map_err(internal)?,
            next_page_token,
        })
    }

    pub(crate) async fn change_category(
        &self,
        change: CategoryChange,
    ) -> ServiceResult<pb::Category> {
        let mut row = self
            .store
            .get_category(&change.code)
            .await?
            .ok_or_else(|| ServiceError::not_found("category", change.name.clone()))?;
        change.problems.finish()?;
        change.patch.apply_to(&mut row);
        if row.version != change.expected {
            return Err(ServiceError::stale_etag(&change.name));
        }
        self.refuse_cycle(&row).await?;
        row.update_time = to_stored(now());
        self.store
            .update_category(&row, change.expected, &change.paths)
            .await?;
        row.version += 1;
        row.to_proto().map_err(internal)
    }

    /// A parent chain must not lead back to the category itself.
    async fn refuse_cycle(&self, row: &CategoryRow) -> ServiceResult<()> {
        let mut ancestor = row.parent.clone();
        while let Some(a) = ancestor {
            if a == row.code {
                return Err(ServiceError::field(
                    "category.parent",
                    "would make the category its own ancestor",
                ));
            }
            ancestor = self
                .store
                .get_category(&a)
                .await?
                .ok_or_else(|| ServiceError::not_found("category", format!("categories/{a}")))?
                .parent;
        }
        Ok(())
    }
}
