//! Vendor mapping templates over HTTP, for administrators and integration systems: upload a new
//! version (validated, with the field at fault named), read the versions in use, and try a
//! sample message (a dry run that stores nothing).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use vigil_codecs::template::{Template, TemplateFormat};
use vigil_store::{StoreError, StoredTemplate};

use super::AppState;
use super::access::{Caller, Unauthenticated};
use super::problem::Problem;

fn problem(status: StatusCode, kind: &str, detail: impl Into<String>) -> Response {
    Problem::new(status, kind, detail).into_response()
}

fn refuse(caller: Result<Caller, Unauthenticated>) -> Option<Response> {
    match caller {
        Err(u) => Some(u.into_response()),
        Ok(c) if !c.may_manage_devices() => Some(problem(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Only administrators and integration systems manage mapping templates.",
        )),
        Ok(_) => None,
    }
}

fn unavailable() -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "The store is unavailable; retry later.",
    )
}

/// `PUT /api/v1/templates/{name}` with the template as `application/json` or `application/yaml`:
/// 201 when stored as the new version in use; 409 unless its version is greater than the stored
/// one; 422 with the field at fault when it does not validate.
pub async fn upload(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let by = match &caller {
        Ok(c) => c.0.subject.clone(),
        Err(_) => String::new(),
    };
    if let Some(r) = refuse(caller) {
        return r;
    }
    let Ok(body) = body else {
        return problem(
            StatusCode::BAD_REQUEST,
            "unreadable-body",
            "The body could not be read.",
        );
    };
    let format = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(TemplateFormat::from_media_type);
    let Some(format) = format else {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Send the template as application/json or application/yaml.",
        );
    };
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "not-utf8",
            "The template is not UTF-8.",
        );
    };
    let template = match Template::parse(&text, format) {
        Ok(t) => t,
        Err(e) => {
            return Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e.kind(), e.to_string())
                .with(json!({ "field": e.field() }))
                .into_response();
        }
    };
    if template.name() != name {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name_mismatch",
            format!(
                "The template is named {:?}, but was sent to {name:?}.",
                template.name()
            ),
        );
    }
    let stored = StoredTemplate {
        name: name.clone(),
        version: template.version(),
        format: match format {
            TemplateFormat::Json => "json".into(),
            TemplateFormat::Yaml => "yaml".into(),
        },
        text,
        uploaded: chrono::Utc::now(),
        by,
    };
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.put_template(&stored)).await {
        Ok(Ok(())) => {}
        Ok(Err(StoreError::Conflict(why))) => {
            return problem(StatusCode::CONFLICT, "version_not_increased", why);
        }
        _ => return unavailable(),
    }
    let (version, rules) = (template.version(), template.rule_count());
    state.ingest.templates().install(template);
    tracing::info!(version, "mapping template uploaded");
    (
        StatusCode::CREATED,
        Json(json!({ "name": name, "version": version, "rules": rules })),
    )
        .into_response()
}

/// `GET /api/v1/templates`: the version in use of every template.
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
) -> Response {
    if let Some(r) = refuse(caller) {
        return r;
    }
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.templates()).await {
        Ok(Ok(all)) => Json(json!({
            "templates": all.iter().map(|t| json!({
                "name": t.name, "version": t.version, "format": t.format,
                "uploaded": t.uploaded, "by": t.by,
            })).collect::<Vec<_>>()
        }))
        .into_response(),
        _ => unavailable(),
    }
}

/// `GET /api/v1/templates/{name}`: the version in use, as it was uploaded.
pub async fn read(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(name): Path<String>,
) -> Response {
    if let Some(r) = refuse(caller) {
        return r;
    }
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.template(&name)).await {
        Ok(Ok(Some(t))) => {
            let media = if t.format == "yaml" {
                "application/yaml"
            } else {
                "application/json"
            };
            (
                [
                    (header::CONTENT_TYPE, media),
                    (header::ETAG, &format!("\"{}\"", t.version)),
                ],
                t.text,
            )
                .into_response()
        }
        Ok(Ok(None)) => problem(StatusCode::NOT_FOUND, "not-found", "No such template."),
        _ => unavailable(),
    }
}

/// `POST /api/v1/templates/{name}/dry-run` with a sample vendor message: what it would become
/// (device, readings in canonical units, rejections with their reasons), storing nothing.
pub async fn dry_run(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, Unauthenticated>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Some(r) = refuse(caller) {
        return r;
    }
    let Ok(body) = body else {
        return problem(
            StatusCode::BAD_REQUEST,
            "unreadable-body",
            "The body could not be read.",
        );
    };
    match state.ingest.templates().get(&name).await {
        Ok(Some(template)) => {
            Json(template.dry_run(&body, chrono::Utc::now(), &state.limits)).into_response()
        }
        Ok(None) => problem(StatusCode::NOT_FOUND, "not-found", "No such template."),
        Err(_) => unavailable(),
    }
}
