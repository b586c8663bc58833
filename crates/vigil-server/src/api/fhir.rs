//! The FHIR R4 API under `/fhir`. Each handler parses (vigil-fhir), asks the store once, and
//! renders (vigil-fhir); every error becomes an OperationOutcome with the status FHIR prescribes.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;
use vigil_fhir::search::{DeviceIdentifier, PatientIdentifier};
use vigil_fhir::{
    AlarmLimit, FhirError, IssueType, MonitoringSettings, Severity, add_monitoring_extension,
};
use vigil_model::{
    Consent, ConsentId, ConsentStatus, Device, DeviceId, ObservationId, Patient, PatientId, UserId,
};
use vigil_rules::surveillance::PatientSettings;
use vigil_store::{
    Cursor, DeviceQuery, ObservationQuery, PatientQuery, Store, StoreError, TimeBound,
};

use super::AppState;
use super::access::{Caller, Refused, Unauthenticated, distinct_patients, within};
use vigil_access::{Interaction, View};
use vigil_model::audit::{AuditAction, AuditEntity};

const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/fhir/metadata", get(metadata))
        .route("/fhir/Patient", get(search_patients).post(create_patient))
        .route("/fhir/Patient/{id}", get(read_patient).put(update_patient))
        .route("/fhir/Device", get(search_devices))
        .route("/fhir/Device/{id}", get(read_device))
        .route("/fhir/DeviceMetric", get(search_device_metrics))
        .route("/fhir/DeviceMetric/{id}", get(read_device_metric))
        .route("/fhir", axum::routing::post(post_bundle))
        .route(
            "/fhir/Observation",
            get(search_observations).post(create_observation),
        )
        .route("/fhir/Observation/{id}", get(read_observation))
        .route("/fhir/Flag", get(search_flags))
        .route("/fhir/Flag/{id}", get(read_flag))
        .route("/fhir/Consent", get(search_consents).post(create_consent))
        .route(
            "/fhir/Consent/{id}",
            get(read_consent).put(update_consent).delete(revoke_consent),
        )
}

/// A FHIR response body.
struct Fhir {
    status: StatusCode,
    body: Value,
    pretty: bool,
    location: Option<String>,
}

impl Fhir {
    fn ok(body: Value) -> Fhir {
        Fhir {
            status: StatusCode::OK,
            body,
            pretty: false,
            location: None,
        }
    }
}

impl IntoResponse for Fhir {
    fn into_response(self) -> Response {
        let bytes = if self.pretty {
            serde_json::to_vec_pretty(&self.body)
        } else {
            serde_json::to_vec(&self.body)
        }
        .unwrap_or_default();
        let mut response =
            (self.status, [(header::CONTENT_TYPE, FHIR_JSON)], bytes).into_response();
        if let Some(location) = self.location
            && let Ok(value) = HeaderValue::from_str(&location)
        {
            response.headers_mut().insert(header::LOCATION, value);
        }
        response
    }
}

/// Everything that can go wrong in a FHIR request, each mapped explicitly below.
enum ApiError {
    Fhir(FhirError),
    Store(StoreError),
    NotFound(String),
    Forbidden(String),
    Unauthenticated(Unauthenticated),
    /// The request body could not be read (too large, cut off).
    Body(BytesRejection),
    /// The access could not be recorded in the audit trail, so nothing is disclosed.
    AuditUnavailable,
    Internal,
}

impl From<FhirError> for ApiError {
    fn from(e: FhirError) -> Self {
        ApiError::Fhir(e)
    }
}

impl From<Refused> for ApiError {
    fn from(e: Refused) -> Self {
        match e {
            Refused::Denied(denial) => ApiError::Forbidden(denial.to_string()),
            Refused::Store(e) => ApiError::Store(e),
            Refused::Internal => ApiError::Internal,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Store(e)
    }
}

fn fhir_status(e: &FhirError) -> StatusCode {
    match e {
        FhirError::NotJson { .. }
        | FhirError::NotAnObject { .. }
        | FhirError::WrongResourceType { .. }
        | FhirError::Structure { .. }
        | FhirError::MissingElement { .. }
        | FhirError::InvalidElement { .. }
        | FhirError::IdMismatch { .. } => StatusCode::BAD_REQUEST,
        FhirError::UnsupportedElement { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        FhirError::UnknownParameter { .. }
        | FhirError::UnsupportedParameter { .. }
        | FhirError::UnsupportedModifier { .. }
        | FhirError::UnsupportedPrefix { .. }
        | FhirError::RepeatedParameter { .. }
        | FhirError::InvalidParameter { .. }
        | FhirError::UnknownSystem { .. }
        | FhirError::UnknownCode { .. } => StatusCode::BAD_REQUEST,
        FhirError::UnsupportedFormat { .. } => StatusCode::NOT_ACCEPTABLE,
    }
}

fn outcome(status: StatusCode, code: IssueType, diagnostics: &str) -> Response {
    Fhir {
        status,
        body: vigil_fhir::operation_outcome(Severity::Error, code, diagnostics),
        pretty: false,
        location: None,
    }
    .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Fhir(e) => Fhir {
                status: fhir_status(&e),
                body: e.to_operation_outcome(),
                pretty: false,
                location: None,
            }
            .into_response(),
            ApiError::Store(StoreError::AlreadyExists { what, id }) => outcome(
                StatusCode::CONFLICT,
                IssueType::Duplicate,
                &format!("{what} {id} already exists"),
            ),
            ApiError::Store(StoreError::NotFound { what, id }) => outcome(
                StatusCode::NOT_FOUND,
                IssueType::NotFound,
                &format!("{what} {id} not found"),
            ),
            ApiError::Store(StoreError::Conflict(detail)) => {
                outcome(StatusCode::CONFLICT, IssueType::Conflict, &detail)
            }
            ApiError::Store(StoreError::Corrupt(_)) => {
                tracing::error!("store reports inconsistent data while serving FHIR");
                outcome(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    IssueType::Exception,
                    "stored data could not be read",
                )
            }
            ApiError::Store(StoreError::Backend(_)) => outcome(
                StatusCode::SERVICE_UNAVAILABLE,
                IssueType::Transient,
                "the store is unavailable; retry later",
            ),
            ApiError::NotFound(what) => outcome(StatusCode::NOT_FOUND, IssueType::NotFound, &what),
            ApiError::Forbidden(why) => outcome(StatusCode::FORBIDDEN, IssueType::Forbidden, &why),
            ApiError::Unauthenticated(u) => u.into_response(),
            ApiError::Body(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                outcome(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    IssueType::TooLong,
                    "the request body is larger than the server accepts",
                )
            }
            ApiError::Body(_) => outcome(
                StatusCode::BAD_REQUEST,
                IssueType::Structure,
                "the request body could not be read",
            ),
            ApiError::AuditUnavailable => outcome(
                StatusCode::SERVICE_UNAVAILABLE,
                IssueType::Transient,
                "the audit trail cannot be written; nothing is disclosed until it can. Retry later.",
            ),
            ApiError::Internal => outcome(
                StatusCode::INTERNAL_SERVER_ERROR,
                IssueType::Exception,
                "internal error",
            ),
        }
    }
}

impl IntoResponse for Unauthenticated {
    fn into_response(self) -> Response {
        let (detail, challenge) = match self {
            Unauthenticated::Missing => (
                "a bearer token or a session is required",
                "Bearer realm=\"vigil\"",
            ),
            Unauthenticated::Invalid => (
                "the bearer token or session is not valid (expired, or signed by someone else)",
                "Bearer realm=\"vigil\", error=\"invalid_token\"",
            ),
            Unauthenticated::Csrf => (
                "a change made with a session needs the session's X-CSRF-Token header",
                "Bearer realm=\"vigil\"",
            ),
            Unauthenticated::Unavailable => {
                return outcome(
                    StatusCode::SERVICE_UNAVAILABLE,
                    IssueType::Transient,
                    "the store is unavailable; retry later",
                );
            }
        };
        let mut response = outcome(StatusCode::UNAUTHORIZED, IssueType::Login, detail);
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        response
    }
}

/// Checks a search's patient filter against what the caller may reach: asking for a patient the
/// caller may not see is refused; without a filter, the search is restricted to those they may
/// see (`None`: everyone).
async fn scope_search(
    state: &Arc<AppState>,
    caller: &Caller,
    resource_type: &'static str,
    patient: Option<&PatientId>,
) -> Result<(Option<Vec<PatientId>>, View), ApiError> {
    let scoped = caller
        .reach(state, resource_type, Interaction::Search)
        .await?;
    if let Some(p) = patient
        && !scoped.reach.includes(p)
    {
        return Err(ApiError::Forbidden(
            vigil_access::Denial::NotYourPatient.to_string(),
        ));
    }
    Ok((within(&scoped), scoped.view))
}

/// Records that the caller did `action` on `entity` concerning `patients`, before the answer
/// goes out: nothing is disclosed or changed unrecorded.
async fn audited(
    state: &Arc<AppState>,
    caller: &Caller,
    action: AuditAction,
    entity: AuditEntity,
    patients: impl IntoIterator<Item = PatientId>,
) -> Result<(), ApiError> {
    let entry = caller.audit(action, entity).patients(patients);
    state.audit.record(entry).await.map_err(|e| {
        tracing::error!(error = %e, "request refused: the audit trail is unavailable");
        ApiError::AuditUnavailable
    })
}

/// A search's query string as the audit keeps it.
fn query_text(raw: &[(String, String)]) -> String {
    encode(raw)
}

/// In the research view, anything that would link a real name, identifier or id to its
/// pseudonym (and so to the pseudonymous record) is refused: the view is only de-identified if
/// nobody can look a known person up in it.
fn refuse_linking(view: View, what: &str) -> Result<(), ApiError> {
    if view == View::Deidentified {
        return Err(ApiError::Forbidden(format!(
            "the de-identified research view does not allow {what}"
        )));
    }
    Ok(())
}

/// Runs a blocking store call off the async runtime.
async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(ApiError::Store)
}

fn params(query: Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The self link of an offset-paged search, and its next link when there is a next page.
fn offset_links(
    base: &str,
    resource: &str,
    raw: &[(String, String)],
    next_offset: Option<usize>,
) -> (String, Option<String>) {
    let self_link = format!("{base}/{resource}?{}", encode(raw));
    let next = next_offset.map(|offset| {
        let mut next: Vec<(String, String)> = raw
            .iter()
            .filter(|(k, _)| k != "_offset")
            .cloned()
            .collect();
        next.push(("_offset".into(), offset.to_string()));
        format!("{base}/{resource}?{}", encode(&next))
    });
    (self_link, next)
}

fn encode(params: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

async fn metadata(State(state): State<Arc<AppState>>) -> Fhir {
    Fhir::ok(vigil_fhir::capability_statement(
        &state.fhir_base,
        env!("CARGO_PKG_VERSION"),
    ))
}

// ---- Patient ----

/// The monitoring settings in force for a patient, as the FHIR Patient's extension shows them:
/// what the clinician set, or the adult defaults.
fn monitoring_settings(
    store: &dyn Store,
    patient: &PatientId,
) -> Result<MonitoringSettings, StoreError> {
    let settings = store
        .patient_settings(patient)?
        .and_then(|json| serde_json::from_str::<PatientSettings>(&json).ok())
        .unwrap_or_default();
    let mut limits = Vec::new();
    for (measurand, sides) in settings.limits.iter() {
        for (bound, side) in [("low", &sides.low), ("high", &sides.high)] {
            let Some(side) = side else { continue };
            limits.extend(side.tiers.iter().map(|tier| AlarmLimit {
                measurand,
                bound,
                limit: tier.limit,
                priority: tier.priority.name(),
                delay_secs: side.delay_secs,
            }));
        }
    }
    Ok(MonitoringSettings {
        cohort: settings.cohort,
        spo2_scale: settings.spo2_scale.number(),
        limits,
    })
}

/// A patient as FHIR, with the monitoring extension.
fn patient_resource(store: &dyn Store, patient: &Patient) -> Result<Value, StoreError> {
    let mut out = vigil_fhir::patient_to_fhir(patient);
    add_monitoring_extension(&mut out, &monitoring_settings(store, &patient.id)?);
    Ok(out)
}

async fn read_patient(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
) -> Result<Fhir, ApiError> {
    let caller = caller.map_err(ApiError::Unauthenticated)?;
    let Ok(id) = PatientId::new(id.clone()) else {
        return Err(ApiError::NotFound(format!("Patient/{id} not found")));
    };
    let view = caller
        .check(&state, "Patient", Interaction::Read, Some(&id))
        .await?;
    refuse_linking(view, "reading a patient by their real id")?;
    let lookup = id.clone();
    let found = blocking(&state, move |s| {
        s.patient(&lookup)?
            .map(|p| patient_resource(s, &p))
            .transpose()
    })
    .await?;
    match found {
        Some(resource) => {
            audited(
                &state,
                &caller,
                AuditAction::Read,
                AuditEntity::resource("Patient", id.as_str()),
                [id.clone()],
            )
            .await?;
            Ok(Fhir::ok(state.shown(resource, view)))
        }
        None => Err(ApiError::NotFound(format!("Patient/{id} not found"))),
    }
}

async fn search_patients(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    RawQuery(query): RawQuery,
) -> Result<Fhir, ApiError> {
    let caller = caller.map_err(ApiError::Unauthenticated)?;
    let raw = params(query);
    let search = vigil_fhir::parse_patient_search(&raw)?;
    let (reach, view) = scope_search(&state, &caller, "Patient", None).await?;
    if search.identifier.is_some() || search.name.is_some() {
        refuse_linking(view, "searching patients by identifier or name")?;
    }
    let (count, offset) = (search.count, search.offset);
    let allowed = reach.clone();
    let name = search.name.clone();
    let identifier = search.identifier.clone();
    let mut found: Vec<Patient> = blocking(&state, move |s| match identifier {
        Some(PatientIdentifier::Id(id)) => Ok(s.patient(&id)?.into_iter().collect()),
        Some(PatientIdentifier::Mrn(mrn)) => Ok(s.patient_by_mrn(&mrn)?.into_iter().collect()),
        Some(PatientIdentifier::Any(value)) => s.search_patients(&PatientQuery {
            identifier: Some(value),
            name,
            limit: count + 1,
            offset,
            within: reach,
        }),
        None => s.search_patients(&PatientQuery {
            identifier: None,
            name,
            limit: count + 1,
            offset,
            within: reach,
        }),
    })
    .await?;
    // Lookups by id or MRN bypass the search: filter them by the same reach.
    if let Some(allowed) = &allowed {
        found.retain(|p| allowed.contains(&p.id));
    }
    if let Some(n) = &search.name
        && matches!(
            search.identifier,
            Some(PatientIdentifier::Id(_) | PatientIdentifier::Mrn(_))
        )
    {
        let n = n.to_lowercase();
        found.retain(|p| {
            p.name.to_lowercase().contains(&n)
                || p.family
                    .as_deref()
                    .is_some_and(|f| f.to_lowercase().contains(&n))
                || p.given.iter().any(|g| g.to_lowercase().contains(&n))
        });
    }
    let more = found.len() > count;
    found.truncate(count);
    audited(
        &state,
        &caller,
        AuditAction::Search,
        AuditEntity::search("Patient", query_text(&raw)),
        distinct_patients(found.iter().map(|p| &p.id)),
    )
    .await?;
    let (self_link, next) = offset_links(
        &state.fhir_base,
        "Patient",
        &raw,
        more.then_some(offset + count),
    );
    let base = state.fhir_base.clone();
    let entries = blocking(&state, move |s| {
        found
            .iter()
            .map(|p| Ok((format!("{base}/Patient/{}", p.id), patient_resource(s, p)?)))
            .collect::<Result<Vec<_>, StoreError>>()
    })
    .await?
    .into_iter()
    .map(|(url, r)| state.shown_entry(url, r, view))
    .collect();
    Ok(Fhir {
        pretty: search.pretty,
        ..Fhir::ok(vigil_fhir::searchset_bundle(
            &self_link,
            next.as_deref(),
            entries,
        ))
    })
}

fn new_patient_id() -> PatientId {
    let mut bytes = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    PatientId::new(format!("pat-{}", hex::encode(bytes)))
        .unwrap_or_else(|_| unreachable!("hex ids are valid"))
}

async fn create_patient(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Fhir, ApiError> {
    let caller = caller.map_err(ApiError::Unauthenticated)?;
    let body = body.map_err(ApiError::Body)?;
    caller
        .check(&state, "Patient", Interaction::Create, None)
        .await?;
    let patient = vigil_fhir::patient_from_fhir(&body, None)?.into_patient(new_patient_id);
    let stored = patient.clone();
    let resource = blocking(&state, move |s| {
        s.create_patient(&stored)?;
        patient_resource(s, &stored)
    })
    .await?;
    audited(
        &state,
        &caller,
        AuditAction::Create,
        AuditEntity::resource("Patient", patient.id.as_str()),
        [patient.id.clone()],
    )
    .await?;
    let location = format!("{}/Patient/{}", state.fhir_base, patient.id);
    Ok(Fhir {
        status: StatusCode::CREATED,
        location: Some(location),
        ..Fhir::ok(resource)
    })
}

async fn update_patient(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Fhir, ApiError> {
    let caller = caller.map_err(ApiError::Unauthenticated)?;
    let body = body.map_err(ApiError::Body)?;
    let id = PatientId::new(id.clone()).map_err(|e| {
        ApiError::Fhir(FhirError::InvalidElement {
            path: "Patient.id".into(),
            value: id,
            reason: e.to_string(),
        })
    })?;
    // Updating a patient one may not see is refused; creating one with a chosen id is a create.
    let exists = {
        let id = id.clone();
        blocking(&state, move |s| Ok(s.patient(&id)?.is_some())).await?
    };
    if exists {
        caller
            .check(&state, "Patient", Interaction::Update, Some(&id))
            .await?;
    } else {
        caller
            .check(&state, "Patient", Interaction::Create, None)
            .await?;
    }
    let patient = vigil_fhir::patient_from_fhir(&body, Some(&id))?.into_patient(|| id.clone());
    let stored = patient.clone();
    // FHIR update-as-create: a PUT to an id that does not exist yet creates it.
    let (created, resource) = blocking(&state, move |s| {
        let created = match s.update_patient(&stored) {
            Ok(()) => false,
            Err(StoreError::NotFound { .. }) => {
                s.create_patient(&stored)?;
                true
            }
            Err(e) => return Err(e),
        };
        Ok((created, patient_resource(s, &stored)?))
    })
    .await?;
    audited(
        &state,
        &caller,
        if created {
            AuditAction::Create
        } else {
            AuditAction::Update
        },
        AuditEntity::resource("Patient", patient.id.as_str()),
        [patient.id.clone()],
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = created.then(|| format!("{}/Patient/{}", state.fhir_base, patient.id));
    Ok(Fhir {
        status,
        location,
        ..Fhir::ok(resource)
    })
}

// ---- Device ----

async fn read_device(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
) -> Result<Fhir, ApiError> {
    let caller = caller.map_err(ApiError::Unauthenticated)?;
    let Ok(id) = DeviceId::new(id.clone()) else {
        return Err(ApiError::NotFound(format!("Device/{id} not found")));
    };
    let (device, patient) = visible_device(&state, &caller, id.clone(), "Device")
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Device/{id} not found")))?;
    audited(
        &state,
        &caller,
        AuditAction::Read,
        AuditEntity::resource("Device", id.as_str()),
        patient.clone(),
    )
    .await?;
    Ok(Fhir::ok(vigil_fhir::device_to_fhir(
        &device,
        patient.as_ref(),
    )))
}

async fn search_devices(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    RawQuery(query): RawQuery,
) -> Result<Fhir, ApiError> {
    let caller = caller.map_err(ApiError::Unauthenticated)?;
    let raw = params(query);
    let search = vigil_fhir::parse_device_search(&raw)?;
    let (reach, _) = scope_search(&state, &caller, "Device", search.patient.as_ref()).await?;
    let (count, offset) = (search.count, search.offset);
    let patient = search.patient.clone();
    let identifier = search.identifier.clone();
    let found = blocking(&state, move |s| {
        let identifier_text = identifier.as_ref().map(|i| match i {
            DeviceIdentifier::Any(v) | DeviceIdentifier::Serial(v) => v.clone(),
            DeviceIdentifier::Id(id) => id.to_string(),
        });
        let mut devices = s.search_devices(&DeviceQuery {
            patient,
            identifier: identifier_text,
            limit: count + 1,
            offset,
            within: reach,
        })?;
        match &identifier {
            Some(DeviceIdentifier::Id(id)) => devices.retain(|d| &d.id == id),
            Some(DeviceIdentifier::Serial(serial)) => {
                devices.retain(|d| d.serial.as_deref() == Some(serial.as_str()))
            }
            _ => {}
        }
        devices
            .into_iter()
            .map(|d| {
                let bound = s
                    .bindings(&d.id)?
                    .into_iter()
                    .find(|b| b.to.is_none())
                    .map(|b| b.patient);
                Ok((d, bound))
            })
            .collect::<Result<Vec<_>, StoreError>>()
    })
    .await?;
    let more = found.len() > count;
    audited(
        &state,
        &caller,
        AuditAction::Search,
        AuditEntity::search("Device", query_text(&raw)),
        distinct_patients(found.iter().take(count).filter_map(|(_, p)| p.as_ref())),
    )
    .await?;
    let (self_link, next) = offset_links(
        &state.fhir_base,
        "Device",
        &raw,
        more.then_some(offset + count),
    );
    let entries = found
        .iter()
        .take(count)
        .map(|(d, p)| {
            (
                format!("{}/Device/{}", state.fhir_base, d.id),
                vigil_fhir::device_to_fhir(d, p.as_ref()),
            )
        })
        .collect();
    Ok(Fhir {
        pretty: search.pretty,
        ..Fhir::ok(vigil_fhir::searchset_bundle(
            &self_link,
            next.as_deref(),
            entries,
        ))
    })
}

// ---- Observation ----

async fn read_observation(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
) -> Result<Fhir, ApiError> {
    let caller = caller.map_err(ApiError::Unauthenticated)?;
    let Ok(number) = id.parse::<i64>() else {
        return Err(ApiError::NotFound(format!("Observation/{id} not found")));
    };
    let Some(observation) = blocking(&state, move |s| s.observation(ObservationId(number))).await?
    else {
        return Err(ApiError::NotFound(format!("Observation/{id} not found")));
    };
    let view = caller
        .check(
            &state,
            "Observation",
            Interaction::Read,
            Some(&observation.patient),
        )
        .await?;
    audited(
        &state,
        &caller,
        AuditAction::Read,
        AuditEntity::resource("Observation", id.as_str()),
        [observation.patient.clone()],
    )
    .await?;
    Ok(Fhir::ok(state.shown(
        vigil_fhir::observation_to_fhir(&observation),
        view,
    )))
}

async fn search_observations(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    RawQuery(query): RawQuery,
) -> Result<Fhir, ApiError> {
    let caller = caller.map_err(ApiError::Unauthenticated)?;
    let raw = params(query);
    let search = vigil_fhir::parse_observation_search(&raw)?;
    let (reach, view) =
        scope_search(&state, &caller, "Observation", search.patient.as_ref()).await?;
    if search.patient.is_some() || search.device.is_some() {
        refuse_linking(view, "searching by a real patient or device id")?;
    }
    let count = search.count;
    let found = if search.matches_nothing() {
        Vec::new()
    } else {
        let query = ObservationQuery {
            patient: search.patient.clone(),
            device: search.device.clone(),
            codes: search.codes.clone(),
            from: search.from.map(|b| TimeBound {
                at: b.at,
                inclusive: b.inclusive,
            }),
            to: search.to.map(|b| TimeBound {
                at: b.at,
                inclusive: b.inclusive,
            }),
            newest_first: search.sort == vigil_fhir::search::DateSort::NewestFirst,
            after: search.cursor.map(|c| Cursor {
                effective: c.effective,
                id: c.id,
            }),
            limit: count + 1,
            within: reach,
        };
        blocking(&state, move |s| s.search_observations(&query)).await?
    };
    let more = found.len() > count;
    let page = &found[..found.len().min(count)];
    audited(
        &state,
        &caller,
        AuditAction::Search,
        AuditEntity::search("Observation", query_text(&raw)),
        distinct_patients(page.iter().map(|o| &o.patient)),
    )
    .await?;
    let canonical = search.to_params();
    let self_link = format!("{}/Observation?{}", state.fhir_base, encode(&canonical));
    let next = match (more, page.last()) {
        (true, Some(last)) => {
            let mut next: Vec<(String, String)> = canonical
                .iter()
                .filter(|(k, _)| k != "_cursor")
                .cloned()
                .collect();
            next.push((
                "_cursor".into(),
                vigil_fhir::search::encode_cursor(last.effective, last.id),
            ));
            Some(format!("{}/Observation?{}", state.fhir_base, encode(&next)))
        }
        _ => None,
    };
    let entries = page
        .iter()
        .map(|o| {
            state.shown_entry(
                format!("{}/Observation/{}", state.fhir_base, o.id),
                vigil_fhir::observation_to_fhir(o),
                view,
            )
        })
        .collect();
    Ok(Fhir {
        pretty: search.pretty,
        ..Fhir::ok(vigil_fhir::searchset_bundle(
            &self_link,
            next.as_deref(),
            entries,
        ))
    })
}

// ---- Flag (alarms) ----

/// An alarm record as a Flag; `None` for an alarm with no patient (a technical alarm of an
/// unbound device), which a Flag cannot express.
fn record_to_flag(r: &vigil_store::AlarmRecord) -> Option<Value> {
    let patient = r.patient.as_ref()?;
    let alarm: Option<vigil_rules::alarm::Alarm> = serde_json::from_str(&r.snapshot).ok();
    let message = alarm
        .as_ref()
        .map(|a| a.message.clone())
        .unwrap_or_else(|| r.condition.clone());
    let physiological = alarm
        .as_ref()
        .is_none_or(|a| a.kind == vigil_rules::alarm::AlarmKind::Physiological);
    Some(vigil_fhir::alarm_to_flag(&vigil_fhir::AlarmFlag {
        id: r.id,
        patient,
        condition: &r.condition,
        message: &message,
        priority: &r.priority,
        physiological,
        open: r.state != "resolved",
        raised_at: r.raised_at,
        resolved_at: alarm.and_then(|a| a.resolved_at),
    }))
}

async fn read_flag(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
) -> Result<Fhir, ApiError> {
    let caller = caller.map_err(ApiError::Unauthenticated)?;
    let not_found = || ApiError::NotFound(format!("Flag/{id} not found"));
    let Ok(number) = id.parse::<u64>() else {
        return Err(not_found());
    };
    let record = blocking(&state, move |s| s.alarm(number))
        .await?
        .ok_or_else(not_found)?;
    let flag = record_to_flag(&record).ok_or_else(not_found)?;
    caller
        .check(&state, "Flag", Interaction::Read, record.patient.as_ref())
        .await?;
    audited(
        &state,
        &caller,
        AuditAction::Read,
        AuditEntity::resource("Flag", id.as_str()),
        record.patient.clone(),
    )
    .await?;
    Ok(Fhir::ok(flag))
}

async fn search_flags(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    RawQuery(query): RawQuery,
) -> Result<Fhir, ApiError> {
    let caller = caller.map_err(ApiError::Unauthenticated)?;
    let raw = params(query);
    let search = vigil_fhir::parse_flag_search(&raw)?;
    let (reach, _) = scope_search(&state, &caller, "Flag", search.patient.as_ref()).await?;
    let (count, offset, active) = (search.count, search.offset, search.active);
    let patient = search.patient.clone();
    let wanted = offset + count + 1;
    // Newest first, read in pages by id until enough match (resolved ones are filtered here).
    let matching: Vec<Value> = blocking(&state, move |s| {
        let mut matching = Vec::new();
        let mut before = None;
        while matching.len() < wanted {
            let page = s.alarms(&vigil_store::AlarmQuery {
                patient: patient.clone(),
                open_only: active == Some(true),
                before,
                limit: 500,
                within: reach.clone(),
            })?;
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            matching.extend(
                page.iter()
                    .filter(|r| active != Some(false) || r.state == "resolved")
                    .filter_map(record_to_flag),
            );
        }
        Ok(matching)
    })
    .await?
    .into_iter()
    .skip(offset)
    .take(count + 1)
    .collect();
    let more = matching.len() > count;
    let shown_patients: Vec<PatientId> = matching
        .iter()
        .take(count)
        .filter_map(|f| f["subject"]["reference"].as_str())
        .filter_map(|r| r.strip_prefix("Patient/"))
        .filter_map(|p| PatientId::new(p).ok())
        .collect();
    audited(
        &state,
        &caller,
        AuditAction::Search,
        AuditEntity::search("Flag", query_text(&raw)),
        distinct_patients(shown_patients.iter()),
    )
    .await?;
    let (self_link, next) = offset_links(
        &state.fhir_base,
        "Flag",
        &raw,
        more.then_some(offset + count),
    );
    let entries = matching
        .into_iter()
        .take(count)
        .map(|f| {
            (
                format!(
                    "{}/Flag/{}",
                    state.fhir_base,
                    f["id"].as_str().unwrap_or_default()
                ),
                f,
            )
        })
        .collect();
    Ok(Fhir {
        pretty: search.pretty,
        ..Fhir::ok(vigil_fhir::searchset_bundle(
            &self_link,
            next.as_deref(),
            entries,
        ))
    })
}

// ---- Observation create, and batch/transaction Bundles ----

/// Whether the caller may add an observation for `subject`: care staff for their patients,
/// integration systems for any, a patient for themself (a home reading typed into the portal).
async fn may_add_observation(
    state: &Arc<AppState>,
    caller: &Caller,
    subject: &PatientId,
) -> Result<bool, ApiError> {
    match caller
        .check(state, "Observation", Interaction::Create, Some(subject))
        .await
    {
        Ok(_) => Ok(true),
        Err(Refused::Denied(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The device an input is stored under (the referenced one, which must exist, or Vigil's
/// `vigil-fhir` entry device), after checking the patient exists. `Err` names what is missing.
fn resolve_refs(
    store: &dyn Store,
    subject: &PatientId,
    device: Option<&DeviceId>,
) -> Result<Result<DeviceId, String>, StoreError> {
    if store.patient(subject)?.is_none() {
        return Ok(Err(format!("Patient/{subject} not found")));
    }
    match device {
        Some(device) if store.device(device)?.is_none() => {
            Ok(Err(format!("Device/{device} not found")))
        }
        Some(device) => Ok(Ok(device.clone())),
        None => Ok(Ok(DeviceId::new(vigil_model::FHIR_ENTRY)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?)),
    }
}

fn submission(
    input: &vigil_fhir::ObservationInput,
    device: DeviceId,
    received: vigil_model::Instant,
) -> vigil_store::Submission {
    vigil_store::Submission {
        patient: Some(input.subject.clone()),
        device,
        received,
        readings: vec![input.reading.clone()],
        waveforms: Vec::new(),
        battery_pct: None,
        signal_dbm: None,
    }
}

/// What became of one stored entry, for the response Bundle.
fn entry_outcome(
    input: &vigil_fhir::ObservationInput,
    outcome: &vigil_store::SubmissionOutcome,
) -> vigil_fhir::EntryOutcome {
    match outcome.readings.first() {
        Some(vigil_store::Outcome::Stored(id)) => vigil_fhir::EntryOutcome::Created {
            id: ObservationId(*id),
            notes: input.notes.clone(),
        },
        Some(vigil_store::Outcome::Duplicate(id)) => vigil_fhir::EntryOutcome::Duplicate {
            id: ObservationId(*id),
        },
        _ => vigil_fhir::EntryOutcome::refused(404, IssueType::NotFound, "patient not found"),
    }
}

fn ingest_error(e: crate::pipeline::IngestError) -> ApiError {
    match e {
        crate::pipeline::IngestError::Store(e) => ApiError::Store(e),
        crate::pipeline::IngestError::Stopped => ApiError::Internal,
    }
}

/// `POST /fhir/Observation`: 201 with the stored Observation and its `Location`, or 200 with the
/// one already stored (same device, code, time and patient); refused with an OperationOutcome
/// naming the element at fault.
async fn create_observation(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Fhir, ApiError> {
    let caller = caller.map_err(ApiError::Unauthenticated)?;
    let body = body.map_err(ApiError::Body)?;
    let received = chrono::Utc::now();
    let input =
        vigil_fhir::observation_from_fhir(&body, &vigil_fhir::InputLimits::received_at(received))?;
    caller
        .check(
            &state,
            "Observation",
            Interaction::Create,
            Some(&input.subject),
        )
        .await?;
    let (subject, named) = (input.subject.clone(), input.device.clone());
    let device = blocking(&state, move |s| resolve_refs(s, &subject, named.as_ref()))
        .await?
        .map_err(ApiError::NotFound)?;
    let outcome = state
        .ingest
        .submit(submission(&input, device, received))
        .await
        .map_err(ingest_error)?;
    let (id, status) = match outcome.readings.first() {
        Some(vigil_store::Outcome::Stored(id)) => (*id, StatusCode::CREATED),
        Some(vigil_store::Outcome::Duplicate(id)) => (*id, StatusCode::OK),
        _ => {
            return Err(ApiError::NotFound(format!(
                "Patient/{} not found",
                input.subject
            )));
        }
    };
    let stored = blocking(&state, move |s| s.observation(ObservationId(id)))
        .await?
        .ok_or(ApiError::Internal)?;
    audited(
        &state,
        &caller,
        AuditAction::Create,
        AuditEntity::resource("Observation", id.to_string()),
        [stored.patient.clone()],
    )
    .await?;
    Ok(Fhir {
        status,
        location: Some(format!("{}/Observation/{id}", state.fhir_base)),
        ..Fhir::ok(vigil_fhir::observation_to_fhir(&stored))
    })
}

/// `POST /fhir` with a `batch` (each entry on its own) or `transaction` (all or nothing) Bundle
/// of Observation creates: 200 with the `batch-response` / `transaction-response`.
async fn post_bundle(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Fhir, ApiError> {
    use vigil_fhir::{BundleInput, EntryOutcome};
    let caller = caller.map_err(ApiError::Unauthenticated)?;
    let body = body.map_err(ApiError::Body)?;
    let received = chrono::Utc::now();
    let bundle =
        vigil_fhir::bundle_from_fhir(&body, &vigil_fhir::InputLimits::received_at(received))?;
    let kind = bundle.kind();
    let subjects = distinct_patients(match &bundle {
        BundleInput::Batch(entries) => entries
            .iter()
            .filter_map(|e| e.as_ref().ok())
            .map(|i| &i.subject)
            .collect::<Vec<_>>(),
        BundleInput::Transaction(entries) => entries.iter().map(|i| &i.subject).collect(),
    });
    let outcomes = match bundle {
        BundleInput::Batch(entries) => {
            let mut outcomes = Vec::with_capacity(entries.len());
            for entry in entries {
                let input = match entry {
                    Ok(input) => input,
                    Err(e) => {
                        outcomes.push(EntryOutcome::invalid(&e));
                        continue;
                    }
                };
                if !may_add_observation(&state, &caller, &input.subject).await? {
                    outcomes.push(EntryOutcome::refused(
                        403,
                        IssueType::Forbidden,
                        "this caller may not add observations for that patient",
                    ));
                    continue;
                }
                let (subject, named) = (input.subject.clone(), input.device.clone());
                let device =
                    match blocking(&state, move |s| resolve_refs(s, &subject, named.as_ref()))
                        .await?
                    {
                        Ok(device) => device,
                        Err(missing) => {
                            outcomes.push(EntryOutcome::refused(
                                404,
                                IssueType::NotFound,
                                &missing,
                            ));
                            continue;
                        }
                    };
                match state
                    .ingest
                    .submit(submission(&input, device, received))
                    .await
                {
                    Ok(o) => outcomes.push(entry_outcome(&input, &o)),
                    Err(_) => outcomes.push(EntryOutcome::refused(
                        500,
                        IssueType::Exception,
                        "not stored; send it again",
                    )),
                }
            }
            outcomes
        }
        BundleInput::Transaction(entries) => {
            // Every reference is checked before anything is stored; then one commit for all.
            let mut submissions = Vec::with_capacity(entries.len());
            for (i, input) in entries.iter().enumerate() {
                if !may_add_observation(&state, &caller, &input.subject).await? {
                    return Err(ApiError::Forbidden(format!(
                        "Bundle.entry[{i}]: this caller may not add observations for that patient"
                    )));
                }
                let (subject, named) = (input.subject.clone(), input.device.clone());
                let device = blocking(&state, move |s| resolve_refs(s, &subject, named.as_ref()))
                    .await?
                    .map_err(|missing| {
                        ApiError::NotFound(format!("Bundle.entry[{i}]: {missing}"))
                    })?;
                submissions.push(submission(input, device, received));
            }
            let results = state
                .ingest
                .submit_all(submissions)
                .await
                .map_err(ingest_error)?;
            entries
                .iter()
                .zip(results)
                .map(|(input, o)| entry_outcome(input, &o))
                .collect()
        }
    };
    audited(
        &state,
        &caller,
        AuditAction::Create,
        AuditEntity::kind("Bundle"),
        subjects,
    )
    .await?;
    Ok(Fhir::ok(vigil_fhir::batch_response_bundle(kind, &outcomes)))
}

// ---- DeviceMetric: a device's calibration ----

/// The device and the patient it is bound to now, if it exists; `Forbidden` when the caller may
/// not see that patient's devices (or an unbound device, which is nobody's to see but staff who
/// see everyone).
async fn visible_device(
    state: &Arc<AppState>,
    caller: &Caller,
    id: DeviceId,
    resource_type: &'static str,
) -> Result<Option<(Device, Option<PatientId>)>, ApiError> {
    let lookup = id.clone();
    let found = blocking(state, move |s| {
        let Some(device) = s.device(&lookup)? else {
            return Ok(None);
        };
        let patient = s
            .bindings(&lookup)?
            .into_iter()
            .find(|b| b.to.is_none())
            .map(|b| b.patient);
        Ok(Some((device, patient)))
    })
    .await?;
    let Some((device, patient)) = found else {
        return Ok(None);
    };
    caller
        .check(state, resource_type, Interaction::Read, patient.as_ref())
        .await?;
    Ok(Some((device, patient)))
}

/// `GET /fhir/DeviceMetric/{device id}.calibration`
async fn read_device_metric(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
) -> Result<Fhir, ApiError> {
    let caller = caller.map_err(ApiError::Unauthenticated)?;
    let not_found = || ApiError::NotFound(format!("DeviceMetric/{id} not found"));
    let device = id
        .strip_suffix(vigil_fhir::CALIBRATION_METRIC_SUFFIX)
        .and_then(|d| DeviceId::new(d).ok())
        .ok_or_else(not_found)?;
    let (device, patient) = visible_device(&state, &caller, device, "DeviceMetric")
        .await?
        .ok_or_else(not_found)?;
    audited(
        &state,
        &caller,
        AuditAction::Read,
        AuditEntity::resource("DeviceMetric", id.as_str()),
        patient,
    )
    .await?;
    vigil_fhir::calibration_metric(&device, chrono::Utc::now())
        .map(Fhir::ok)
        .ok_or_else(not_found)
}

/// `GET /fhir/DeviceMetric?source=Device/{id}` (or `source={id}`): the device's calibration
/// metric, if it has one.
async fn search_device_metrics(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    RawQuery(query): RawQuery,
) -> Result<Fhir, ApiError> {
    let caller = caller.map_err(ApiError::Unauthenticated)?;
    let raw = params(query);
    let mut source = None;
    for (name, value) in &raw {
        match name.as_str() {
            "source" => source = Some(value.strip_prefix("Device/").unwrap_or(value).to_owned()),
            "_format" | "_pretty" => {}
            _ => {
                return Err(ApiError::Fhir(FhirError::UnknownParameter {
                    resource: "DeviceMetric",
                    name: name.clone(),
                    supported: &["source"],
                }));
            }
        }
    }
    let Some(source) = source else {
        return Err(ApiError::Fhir(FhirError::UnsupportedParameter {
            name: "source".into(),
            reason: "DeviceMetric is searched by its source device: source=Device/{id}".into(),
        }));
    };
    let self_link = format!("{}/DeviceMetric?source=Device/{source}", state.fhir_base);
    let entries = match DeviceId::new(source) {
        Ok(id) => match visible_device(&state, &caller, id, "DeviceMetric").await? {
            Some((device, patient)) => {
                audited(
                    &state,
                    &caller,
                    AuditAction::Search,
                    AuditEntity::search("DeviceMetric", query_text(&raw)),
                    patient,
                )
                .await?;
                vigil_fhir::calibration_metric(&device, chrono::Utc::now())
                    .map(|m| {
                        vec![(
                            format!(
                                "{}/DeviceMetric/{}",
                                state.fhir_base,
                                m["id"].as_str().unwrap_or_default()
                            ),
                            m,
                        )]
                    })
                    .unwrap_or_default()
            }
            None => Vec::new(),
        },
        Err(_) => Vec::new(),
    };
    Ok(Fhir::ok(vigil_fhir::searchset_bundle(
        &self_link, None, entries,
    )))
}

// ---- Consent: a patient's permission to share ----

fn new_consent_id() -> ConsentId {
    let mut bytes = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    ConsentId::new(format!("cns-{}", hex::encode(bytes)))
        .unwrap_or_else(|_| unreachable!("hex ids are valid"))
}

/// The account recording a consent (a patient, a proxy, an administrator).
fn recorder(caller: &Caller) -> Result<UserId, ApiError> {
    UserId::new(caller.0.subject.clone())
        .map_err(|_| ApiError::Forbidden("only a Vigil account can record a consent".into()))
}

async fn stored_consent(state: &Arc<AppState>, id: &str) -> Result<Consent, ApiError> {
    let not_found = || ApiError::NotFound(format!("Consent/{id} not found"));
    let id = ConsentId::new(id).map_err(|_| not_found())?;
    blocking(state, move |s| s.consent(&id))
        .await?
        .ok_or_else(not_found)
}

async fn read_consent(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
) -> Result<Fhir, ApiError> {
    let caller = caller.map_err(ApiError::Unauthenticated)?;
    let consent = stored_consent(&state, &id).await?;
    caller
        .check(&state, "Consent", Interaction::Read, Some(&consent.patient))
        .await?;
    audited(
        &state,
        &caller,
        AuditAction::Read,
        AuditEntity::resource("Consent", consent.id.as_str()),
        [consent.patient.clone()],
    )
    .await?;
    Ok(Fhir::ok(vigil_fhir::consent_to_fhir(&consent)))
}

/// `GET /fhir/Consent?patient=…`; a patient's own search needs no parameter.
async fn search_consents(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    RawQuery(query): RawQuery,
) -> Result<Fhir, ApiError> {
    let caller = caller.map_err(ApiError::Unauthenticated)?;
    let raw = params(query);
    let mut patient = None;
    for (name, value) in &raw {
        match name.as_str() {
            "patient" => {
                let id = value.strip_prefix("Patient/").unwrap_or(value);
                patient = Some(PatientId::new(id).map_err(|e| {
                    ApiError::Fhir(FhirError::InvalidParameter {
                        name: "patient".into(),
                        value: value.clone(),
                        reason: e.to_string(),
                    })
                })?);
            }
            "_format" | "_pretty" => {}
            _ => {
                return Err(ApiError::Fhir(FhirError::UnknownParameter {
                    resource: "Consent",
                    name: name.clone(),
                    supported: &["patient"],
                }));
            }
        }
    }
    let patient = match patient.or_else(|| caller.0.patient.clone()) {
        Some(p) => p,
        None => {
            return Err(ApiError::Fhir(FhirError::UnsupportedParameter {
                name: "patient".into(),
                reason: "consents are searched by patient: patient=Patient/{id}".into(),
            }));
        }
    };
    let (_, _) = scope_search(&state, &caller, "Consent", Some(&patient)).await?;
    let lookup = patient.clone();
    let consents = blocking(&state, move |s| s.consents_of(&lookup)).await?;
    audited(
        &state,
        &caller,
        AuditAction::Search,
        AuditEntity::search("Consent", query_text(&raw)),
        [patient.clone()],
    )
    .await?;
    let self_link = format!("{}/Consent?patient=Patient/{patient}", state.fhir_base);
    let entries = consents
        .iter()
        .map(|c| {
            (
                format!("{}/Consent/{}", state.fhir_base, c.id),
                vigil_fhir::consent_to_fhir(c),
            )
        })
        .collect();
    Ok(Fhir::ok(vigil_fhir::searchset_bundle(
        &self_link, None, entries,
    )))
}

/// Stores a consent, records the change in the audit trail and tells open live streams that
/// access changed.
async fn save_consent(
    state: &Arc<AppState>,
    caller: &Caller,
    consent: Consent,
) -> Result<(), ApiError> {
    let entity = AuditEntity::resource("Consent", consent.id.as_str());
    let patient = consent.patient.clone();
    let detail = format!(
        "{} {} {}",
        match consent.status {
            ConsentStatus::Active => "grant",
            ConsentStatus::Inactive => "revoke",
        },
        match consent.grantee.kind {
            vigil_model::GranteeKind::Person => "person",
            vigil_model::GranteeKind::Organization => "organization",
        },
        consent.grantee.id
    );
    blocking(state, move |s| s.put_consent(&consent)).await?;
    state.access_changed();
    let entry = caller
        .audit(AuditAction::ConsentChange, entity)
        .patient(patient)
        .detail(detail);
    state.audit.record(entry).await.map_err(|e| {
        tracing::error!(error = %e, "a consent changed but could not be audited");
        ApiError::AuditUnavailable
    })
}

/// `POST /fhir/Consent`: a patient (or an administrator for them) shares their record.
async fn create_consent(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Fhir, ApiError> {
    let caller = caller.map_err(ApiError::Unauthenticated)?;
    let body = body.map_err(ApiError::Body)?;
    let input = vigil_fhir::consent_from_fhir(&body, None)?;
    caller
        .check(&state, "Consent", Interaction::Create, Some(&input.patient))
        .await?;
    if input.status != ConsentStatus::Active {
        return Err(ApiError::Fhir(FhirError::InvalidElement {
            path: "Consent.status".into(),
            value: "inactive".into(),
            reason: "a new consent is active; revoke one by updating or deleting it".into(),
        }));
    }
    let now = chrono::Utc::now();
    let start = input.start.unwrap_or(now);
    // Without a start the consent starts now, so an end already past would store a period that
    // ends before it begins (and that Vigil itself refuses when the consent is sent back).
    if let Some(end) = input.end
        && end <= start
    {
        return Err(ApiError::Fhir(FhirError::InvalidElement {
            path: "Consent.provision.period.end".into(),
            value: vigil_fhir::common::instant(end),
            reason: "the end must be after the start (now, when no start is given)".into(),
        }));
    }
    let consent = Consent {
        id: new_consent_id(),
        patient: input.patient,
        grantee: input.grantee,
        resource_types: input.resource_types,
        start,
        end: input.end,
        status: ConsentStatus::Active,
        recorded_by: recorder(&caller)?,
        recorded_at: now,
    };
    save_consent(&state, &caller, consent.clone()).await?;
    Ok(Fhir {
        status: StatusCode::CREATED,
        location: Some(format!("{}/Consent/{}", state.fhir_base, consent.id)),
        ..Fhir::ok(vigil_fhir::consent_to_fhir(&consent))
    })
}

/// `PUT /fhir/Consent/{id}`: changes the period or shared types, or revokes (`inactive`). A
/// consent stays with its patient.
async fn update_consent(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Fhir, ApiError> {
    let caller = caller.map_err(ApiError::Unauthenticated)?;
    let body = body.map_err(ApiError::Body)?;
    let existing = stored_consent(&state, &id).await?;
    let input = vigil_fhir::consent_from_fhir(&body, Some(&existing.id))?;
    caller
        .check(
            &state,
            "Consent",
            Interaction::Update,
            Some(&existing.patient),
        )
        .await?;
    if input.patient != existing.patient {
        return Err(ApiError::Fhir(FhirError::InvalidElement {
            path: "Consent.patient".into(),
            value: input.patient.to_string(),
            reason: "a consent cannot be moved to another patient".into(),
        }));
    }
    let consent = Consent {
        grantee: input.grantee,
        resource_types: input.resource_types,
        start: input.start.unwrap_or(existing.start),
        end: input.end,
        status: input.status,
        recorded_by: recorder(&caller)?,
        recorded_at: chrono::Utc::now(),
        ..existing
    };
    save_consent(&state, &caller, consent.clone()).await?;
    Ok(Fhir::ok(vigil_fhir::consent_to_fhir(&consent)))
}

/// `DELETE /fhir/Consent/{id}`: revokes it. The record is kept (inactive) for the accounting of
/// who could see what when; access ends at once, including on open live streams.
async fn revoke_consent(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller.map_err(ApiError::Unauthenticated)?;
    let existing = stored_consent(&state, &id).await?;
    caller
        .check(
            &state,
            "Consent",
            Interaction::Delete,
            Some(&existing.patient),
        )
        .await?;
    let now = chrono::Utc::now();
    let consent = Consent {
        status: ConsentStatus::Inactive,
        // A consent revoked before it began keeps its period (ending it now would end it before
        // its start); being inactive, it grants nothing either way.
        end: if existing.start < now {
            Some(existing.end.map_or(now, |e| e.min(now)))
        } else {
            existing.end
        },
        recorded_by: recorder(&caller)?,
        recorded_at: chrono::Utc::now(),
        ..existing
    };
    save_consent(&state, &caller, consent).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
