//! Organisations: applying units, contractors, supervision firms and consultancies, named by
//! their unified social credit code.

use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, Violations,
    paging::Page,
    time::{now, to_stored},
    uscc::CreditCode,
};
use govit_proto::projects::v1 as pb;

use crate::{
    ProjectsService,
    model::{OrgRow, to_json},
    validation::{self as check, MAX_NAME_CHARS},
};

pub(crate) const ORG_READERS: [Role; 6] = [
    Role::Applicant,
    Role::Office,
    Role::Supervisor,
    Role::Inspector,
    Role::Service,
    Role::RegistryAdmin,
];

/// Who may register or edit an organisation; applicants only their own.
pub(crate) const ORG_WRITERS: [Role; 2] = [Role::Office, Role::Applicant];

fn internal(e: anyhow::Error) -> ServiceError {
    ServiceError::Internal(e)
}

/// An organisation to register, checked.
pub(crate) struct NewOrganization {
    code: CreditCode,
    display_name: String,
    kind: pb::OrganizationKind,
    contacts: String,
}

impl TryFrom<pb::CreateOrganizationRequest> for NewOrganization {
    type Error = ServiceError;

    fn try_from(req: pb::CreateOrganizationRequest) -> ServiceResult<Self> {
        let mut v = Violations::new();
        let Some(org) = req.organization else {
            return Err(ServiceError::field("organization", "is required"));
        };
        let code = match CreditCode::parse(&org.credit_code) {
            Ok(c) => Some(c),
            Err(problem) => {
                v.add("organization.credit_code", problem);
                None
            }
        };
        let name_field = "organization.display_name";
        check::text(&mut v, name_field, &org.display_name, MAX_NAME_CHARS);
        let kind =
            check::enum_value::<pb::OrganizationKind>(&mut v, "organization.kind", org.kind, false);
        let contacts = check::contacts(&mut v, "organization.contacts", &org.contacts);
        v.finish()?;
        let (Some(code), Some(kind)) = (code, kind) else {
            return Err(ServiceError::field("organization", "is invalid"));
        };
        Ok(NewOrganization {
            code,
            display_name: org.display_name.trim().to_owned(),
            kind,
            contacts: to_json(&contacts),
        })
    }
}

/// A listing of organisations, by kind.
pub(crate) struct OrgQuery {
    kind: Option<pb::OrganizationKind>,
    page_size: i32,
    page_token: String,
}

impl TryFrom<pb::ListOrganizationsRequest> for OrgQuery {
    type Error = ServiceError;

    fn try_from(req: pb::ListOrganizationsRequest) -> ServiceResult<Self> {
        let mut v = Violations::new();
        let kind = check::enum_value::<pb::OrganizationKind>(&mut v, "kind", req.kind, true);
        v.finish()?;
        Ok(OrgQuery {
            kind: kind.filter(|k| *k != pb::OrganizationKind::Unspecified),
            page_size: req.page_size,
            page_token: req.page_token,
        })
    }
}

/// An edit of an organisation: its fields are checked with the record in hand.
pub(crate) struct OrgEdit {
    code: CreditCode,
    paths: Vec<String>,
    organization: pb::Organization,
}

impl TryFrom<pb::UpdateOrganizationRequest> for OrgEdit {
    type Error = ServiceError;

    fn try_from(req: pb::UpdateOrganizationRequest) -> ServiceResult<Self> {
        let Some(organization) = req.organization else {
            return Err(ServiceError::field("organization", "is required"));
        };
        let code = check::parse_org_name("organization.name", &organization.name)?;
        Ok(OrgEdit {
            code,
            paths: req.update_mask.map(|m| m.paths).unwrap_or_default(),
            organization,
        })
    }
}

impl OrgRow {
    /// Sets the fields named by `paths` from `org`, adding what is wrong to `v`.
    fn set_fields(&mut self, v: &mut Violations, org: &pb::Organization, paths: &[String]) {
        for path in paths {
            let field = format!("organization.{path}");
            match path.as_str() {
                "display_name" => {
                    check::text(v, &field, &org.display_name, MAX_NAME_CHARS);
                    self.display_name = org.display_name.trim().to_owned();
                }
                "kind" => {
                    if let Some(k) =
                        check::enum_value::<pb::OrganizationKind>(v, &field, org.kind, false)
                    {
                        self.kind = k;
                    }
                }
                "contacts" => self.contacts = to_json(&check::contacts(v, &field, &org.contacts)),
                other => v.add(
                    "update_mask",
                    format!("{other:?} is not an updatable field"),
                ),
            }
        }
    }
}

impl ProjectsService {
    /// Whether the caller may see organisation `code`: applicants only their own.
    pub(crate) fn visible_org(caller: &Caller, code: &str) -> ServiceResult<()> {
        caller.require(&ORG_READERS)?;
        if caller.is(Role::Applicant) && caller.organization.as_deref() != Some(code) {
            return Err(ServiceError::PermissionDenied(
                "applicants may only see their own organisation".into(),
            ));
        }
        Ok(())
    }

    /// NOT_FOUND unless organisation `code` is registered.
    pub(crate) async fn require_org(&self, code: &str) -> ServiceResult<()> {
        if self.store.org_exists(code).await? {
            Ok(())
        } else {
            Err(ServiceError::not_found(
                "organization",
                crate::model::org_name(code),
            ))
        }
    }

    pub(crate) async fn register_org(
        &self,
        caller: &Caller,
        org: NewOrganization,
    ) -> ServiceResult<pb::Organization> {
        if caller.is(Role::Applicant) && caller.organization.as_deref() != Some(org.code.as_str()) {
            return Err(ServiceError::PermissionDenied(
                "applicants may only register their own organisation".into(),
            ));
        }
        let at = to_stored(now());
        let row = OrgRow {
            credit_code: org.code.to_string(),
            display_name: org.display_name,
            kind: org.kind,
            contacts: org.contacts,
            version: 1,
            create_time: at.clone(),
            update_time: at,
        };
        self.store.create_org(&row, caller).await?;
        row.to_proto().map_err(internal)
    }

    pub(crate) async fn org_named(
        &self,
        code: &CreditCode,
        name: &str,
    ) -> ServiceResult<pb::Organization> {
        self.store
            .get_org(code.as_str())
            .await?
            .ok_or_else(|| ServiceError::not_found("organization", name.to_owned()))?
            .to_proto()
            .map_err(internal)
    }

    pub(crate) async fn find_orgs(
        &self,
        caller: &Caller,
        query: OrgQuery,
    ) -> ServiceResult<pb::ListOrganizationsResponse> {
        let kind = query.kind;
        let fingerprint = format!(
            "orgs kind={:?}",
            kind.map(govit_proto::StoredEnum::as_stored)
        );
        let page = Page::parse(query.page_size, &query.page_token, &fingerprint)?;
        let only = if caller.is(Role::Applicant) {
            caller.organization.as_deref()
        } else {
            None
        };
        let mut rows = self
            .store
            .list_orgs(kind, only, page.after.as_deref(), page.fetch_limit())
            .await?;
        let next_page_token = page.finish(&mut rows, |r| r.credit_code.clone());
        Ok(pb::ListOrganizationsResponse {
            organizations: rows
                .iter()
                .map(OrgRow::to_proto)
                .collect::<Result<_, _>>()
                .map_err(internal)?,
            next_page_token,
        })
    }

    pub(crate) async fn edit_org(
        &self,
        caller: &Caller,
        edit: OrgEdit,
    ) -> ServiceResult<pb::Organization> {
        let OrgEdit {
            code,
            paths,
            organization: org,
        } = edit;
        let mut v = Violations::new();
        if paths.is_empty() {
            v.add("update_mask", "must name the fields to change");
        }
        let expected = check::etag_into(&mut v, "organization.etag", &org.etag).unwrap_or(0);
        Self::visible_org(caller, code.as_str())?;
        let mut row = self
            .store
            .get_org(code.as_str())
            .await?
            .ok_or_else(|| ServiceError::not_found("organization", org.name.clone()))?;
        row.set_fields(&mut v, &org, &paths);
        v.finish()?;
        if row.version != expected {
            return Err(ServiceError::stale_etag(&org.name));
        }
        row.update_time = to_stored(now());
        self.store.update_org(&row, expected, caller, paths).await?;
        row.version += 1;
        row.to_proto().map_err(internal)
    }
}
