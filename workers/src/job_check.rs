//! The worker trusts no message: checks on a page job before any key it names is used.
//!
//! Anyone who can publish to the queue can write a page job, so before the worker reads or writes
//! anything for one it checks that:
//!
//! 1. the tenant and the document id are names Folio could have made
//!    ([`folio_transport::valid_tenant`], [`folio_transport::valid_document_id`]), so the prefix
//!    `{tenant}/docs/{document_id}/` is one folder of one tenant;
//! 2. the page is 1-based, within the job's page count, and the image key is exactly that page's
//!    image under that prefix (`DocKeys::page_image`) — the only key the API and re-processing
//!    ever put there;
//! 3. the document's manifest (read from that prefix) names the same tenant and document, lists
//!    the page, and has as many pages as the job says.
//!
//! Every key the worker then touches (the manifest, the page image, the result or error record,
//! the assembled document) is derived from that prefix. A job failing a check is dead-lettered
//! with reason `invalid_job` and counted (`folio_invalid_jobs_total{engine,check}`); the log names
//! the check, never the job's values (its prompt, its keys) beyond ids that passed check 1.

use folio_schemas::{DocKeys, Manifest, PageJob};
use folio_transport::{valid_document_id, valid_tenant};

/// The reason a rejected job is dead-lettered with.
pub const INVALID_JOB: &str = "invalid_job";

/// Which check a page job failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidJob {
    #[error("the tenant is not a valid tenant name")]
    Tenant,
    #[error("the document id is not a valid document id")]
    DocumentId,
    #[error("the page number is 0 (pages count from 1)")]
    Page,
    #[error("the image key is not the page's image under the job's document prefix")]
    ImageKey,
    #[error("the document has no manifest")]
    NoManifest,
    #[error("the manifest names another tenant or document")]
    ManifestMismatch,
    #[error("the page is not one of the manifest's pages, or the page count differs")]
    PageNotInManifest,
}

impl InvalidJob {
    /// Short name of the check, for the metric's label and the log.
    pub fn check(&self) -> &'static str {
        match self {
            InvalidJob::Tenant => "tenant",
            InvalidJob::DocumentId => "document_id",
            InvalidJob::Page => "page",
            InvalidJob::ImageKey => "image_key",
            InvalidJob::NoManifest => "no_manifest",
            InvalidJob::ManifestMismatch => "manifest_mismatch",
            InvalidJob::PageNotInManifest => "page_not_in_manifest",
        }
    }
}

/// Checks 1 and 2 (no I/O); the keys of the job's document when they pass.
pub fn check_job(job: &PageJob) -> Result<DocKeys, InvalidJob> {
    if !valid_tenant(&job.tenant) {
        return Err(InvalidJob::Tenant);
    }
    if !valid_document_id(&job.document_id) {
        return Err(InvalidJob::DocumentId);
    }
    // A page number names a page of the source; with a page selection (`--pages 2-`) it may be
    // past the job's page count (the number of selected pages). The manifest, read next from
    // the job's own prefix, says whether the page was selected.
    if job.page == 0 {
        return Err(InvalidJob::Page);
    }
    let keys = DocKeys::new(&job.tenant, &job.document_id);
    if job.image_key != keys.page_image(job.page) {
        return Err(InvalidJob::ImageKey);
    }
    Ok(keys)
}

/// Check 3, against the manifest read from the job's own prefix.
pub fn check_manifest(job: &PageJob, manifest: &Manifest) -> Result<(), InvalidJob> {
    if manifest.tenant != job.tenant || manifest.document_id != job.document_id {
        return Err(InvalidJob::ManifestMismatch);
    }
    let count_matches = u32::try_from(manifest.pages.len()).is_ok_and(|n| n == job.page_count);
    if !count_matches || !manifest.pages.contains(&job.page) {
        return Err(InvalidJob::PageNotInManifest);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use folio_schemas::{JobOptions, SCHEMA_VERSION};

    fn job(tenant: &str, doc: &str, page: u32) -> PageJob {
        PageJob {
            schema_version: SCHEMA_VERSION.into(),
            tenant: tenant.into(),
            document_id: doc.into(),
            page,
            page_count: 3,
            image_key: DocKeys::new(tenant, doc).page_image(page),
            options: JobOptions::default(),
            dpi: None,
            traceparent: None,
            submitted_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn manifest(tenant: &str, doc: &str, pages: Vec<u32>) -> Manifest {
        Manifest {
            schema_version: SCHEMA_VERSION.into(),
            tenant: tenant.into(),
            document_id: doc.into(),
            file_name: None,
            media_type: "application/pdf".into(),
            sha256: "00".into(),
            size_bytes: 1,
            source_page_count: 9,
            pages,
            options: JobOptions::default(),
            created_at: "2026-01-01T00:00:00Z".into(),
            metadata: Default::default(),
        }
    }

    #[test]
    fn a_job_of_folio_passes() {
        let j = job("acme", "0190b4c2-7f4e-7a1b-9c3d-1234567890ab", 2);
        let keys = check_job(&j).unwrap();
        assert_eq!(
            keys.prefix(),
            "acme/docs/0190b4c2-7f4e-7a1b-9c3d-1234567890ab/"
        );
        let m = manifest("acme", &j.document_id, vec![1, 2, 3]);
        assert_eq!(check_manifest(&j, &m), Ok(()));
    }

    /// A forgery applied to an honest job, and the check it must fail.
    type Forgery = (fn(&mut PageJob), InvalidJob);

    #[test]
    fn forged_names_and_keys_fail_their_check() {
        let cases: Vec<Forgery> = vec![
            (|j| j.tenant = "../beta".into(), InvalidJob::Tenant),
            (|j| j.tenant = String::new(), InvalidJob::Tenant),
            (
                |j| j.document_id = "d/../../beta".into(),
                InvalidJob::DocumentId,
            ),
            (|j| j.page = 0, InvalidJob::Page),
            // Another tenant's page, named by key.
            (
                |j| j.image_key = "beta/docs/d1/pages/00001.png".into(),
                InvalidJob::ImageKey,
            ),
            // Inside the prefix, but not the page's image (a result, a traversal, another page).
            (
                |j| j.image_key = "acme/docs/d1/results/00001.json".into(),
                InvalidJob::ImageKey,
            ),
            (
                |j| j.image_key = "acme/docs/d1/pages/../../d2/pages/00001.png".into(),
                InvalidJob::ImageKey,
            ),
            (
                |j| j.image_key = "acme/docs/d1/pages/00002.png".into(),
                InvalidJob::ImageKey,
            ),
        ];
        for (forge, want) in cases {
            let mut j = job("acme", "d1", 1);
            forge(&mut j);
            assert_eq!(check_job(&j).map(|_| ()), Err(want), "{j:?}");
        }
    }

    /// `--pages 2-` of a 3-page PDF: two jobs (page count 2) for pages 2 and 3.
    #[test]
    fn a_selected_page_past_the_page_count_is_valid() {
        let mut j = job("acme", "d1", 3);
        j.page_count = 2;
        assert!(check_job(&j).is_ok());
        assert_eq!(
            check_manifest(&j, &manifest("acme", "d1", vec![2, 3])),
            Ok(())
        );
        j.page = 1;
        j.image_key = DocKeys::new("acme", "d1").page_image(1);
        assert_eq!(
            check_manifest(&j, &manifest("acme", "d1", vec![2, 3])),
            Err(InvalidJob::PageNotInManifest)
        );
    }

    #[test]
    fn the_manifest_must_vouch_for_the_page() {
        let j = job("acme", "d1", 2);
        assert_eq!(
            check_manifest(&j, &manifest("beta", "d1", vec![1, 2, 3])),
            Err(InvalidJob::ManifestMismatch)
        );
        assert_eq!(
            check_manifest(&j, &manifest("acme", "d2", vec![1, 2, 3])),
            Err(InvalidJob::ManifestMismatch)
        );
        assert_eq!(
            check_manifest(&j, &manifest("acme", "d1", vec![1, 3, 4])),
            Err(InvalidJob::PageNotInManifest)
        );
        assert_eq!(
            check_manifest(&j, &manifest("acme", "d1", vec![1, 2])),
            Err(InvalidJob::PageNotInManifest)
        );
    }
}
