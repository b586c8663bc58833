//! Every element of the R4 data types an Observation and a Bundle are read through
//! (<http://hl7.org/fhir/R4/observation.html>, <http://hl7.org/fhir/R4/bundle.html>,
//! <http://hl7.org/fhir/R4/datatypes.html>). Elements Vigil does not use are accepted as
//! `IgnoredAny`; anything else is refused by `deny_unknown_fields`, naming it. Primitive elements
//! may carry their `_x` companion (id and extensions of the primitive).

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

/// R4 `Observation`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // Fields that are only accepted are never read.
pub(super) struct ObservationIn {
    pub resource_type: IgnoredAny,
    pub id: Option<IgnoredAny>,
    #[serde(rename = "_id")]
    pub id_ext: Option<IgnoredAny>,
    pub meta: Option<MetaIn>,
    pub implicit_rules: Option<IgnoredAny>,
    #[serde(rename = "_implicitRules")]
    pub implicit_rules_ext: Option<IgnoredAny>,
    pub language: Option<IgnoredAny>,
    #[serde(rename = "_language")]
    pub language_ext: Option<IgnoredAny>,
    pub text: Option<IgnoredAny>,
    pub contained: Option<IgnoredAny>,
    pub extension: Option<Vec<Value>>,
    pub modifier_extension: Option<IgnoredAny>,
    #[serde(default)]
    pub identifier: Vec<IdentifierIn>,
    pub based_on: Option<IgnoredAny>,
    pub part_of: Option<IgnoredAny>,
    pub status: Option<String>,
    #[serde(rename = "_status")]
    pub status_ext: Option<IgnoredAny>,
    #[serde(default)]
    pub category: Vec<CodeableConceptIn>,
    pub code: Option<CodeableConceptIn>,
    pub subject: Option<ReferenceIn>,
    pub focus: Option<IgnoredAny>,
    pub encounter: Option<IgnoredAny>,
    pub effective_date_time: Option<String>,
    #[serde(rename = "_effectiveDateTime")]
    pub effective_date_time_ext: Option<IgnoredAny>,
    pub effective_period: Option<PeriodIn>,
    pub effective_timing: Option<IgnoredAny>,
    pub effective_instant: Option<String>,
    #[serde(rename = "_effectiveInstant")]
    pub effective_instant_ext: Option<IgnoredAny>,
    pub issued: Option<IgnoredAny>,
    #[serde(rename = "_issued")]
    pub issued_ext: Option<IgnoredAny>,
    pub performer: Option<IgnoredAny>,
    pub value_quantity: Option<QuantityIn>,
    pub value_codeable_concept: Option<CodeableConceptIn>,
    pub value_string: Option<IgnoredAny>,
    #[serde(rename = "_valueString")]
    pub value_string_ext: Option<IgnoredAny>,
    pub value_boolean: Option<bool>,
    #[serde(rename = "_valueBoolean")]
    pub value_boolean_ext: Option<IgnoredAny>,
    pub value_integer: Option<IgnoredAny>,
    #[serde(rename = "_valueInteger")]
    pub value_integer_ext: Option<IgnoredAny>,
    pub value_range: Option<IgnoredAny>,
    pub value_ratio: Option<IgnoredAny>,
    pub value_sampled_data: Option<IgnoredAny>,
    pub value_time: Option<IgnoredAny>,
    #[serde(rename = "_valueTime")]
    pub value_time_ext: Option<IgnoredAny>,
    pub value_date_time: Option<IgnoredAny>,
    #[serde(rename = "_valueDateTime")]
    pub value_date_time_ext: Option<IgnoredAny>,
    pub value_period: Option<IgnoredAny>,
    pub data_absent_reason: Option<CodeableConceptIn>,
    pub interpretation: Option<IgnoredAny>,
    pub note: Option<IgnoredAny>,
    pub body_site: Option<IgnoredAny>,
    pub method: Option<IgnoredAny>,
    pub specimen: Option<IgnoredAny>,
    pub device: Option<ReferenceIn>,
    pub reference_range: Option<IgnoredAny>,
    pub has_member: Option<IgnoredAny>,
    pub derived_from: Option<IgnoredAny>,
    #[serde(default)]
    pub component: Vec<ComponentIn>,
}

/// R4 `Observation.component`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
pub(super) struct ComponentIn {
    pub id: Option<IgnoredAny>,
    pub extension: Option<IgnoredAny>,
    pub modifier_extension: Option<IgnoredAny>,
    pub code: Option<CodeableConceptIn>,
    pub value_quantity: Option<QuantityIn>,
    pub value_codeable_concept: Option<CodeableConceptIn>,
    pub value_string: Option<IgnoredAny>,
    #[serde(rename = "_valueString")]
    pub value_string_ext: Option<IgnoredAny>,
    pub value_boolean: Option<bool>,
    #[serde(rename = "_valueBoolean")]
    pub value_boolean_ext: Option<IgnoredAny>,
    pub value_integer: Option<IgnoredAny>,
    #[serde(rename = "_valueInteger")]
    pub value_integer_ext: Option<IgnoredAny>,
    pub value_range: Option<IgnoredAny>,
    pub value_ratio: Option<IgnoredAny>,
    pub value_sampled_data: Option<IgnoredAny>,
    pub value_time: Option<IgnoredAny>,
    #[serde(rename = "_valueTime")]
    pub value_time_ext: Option<IgnoredAny>,
    pub value_date_time: Option<IgnoredAny>,
    #[serde(rename = "_valueDateTime")]
    pub value_date_time_ext: Option<IgnoredAny>,
    pub value_period: Option<IgnoredAny>,
    pub data_absent_reason: Option<CodeableConceptIn>,
    pub interpretation: Option<IgnoredAny>,
    pub reference_range: Option<IgnoredAny>,
}

/// `value[x]` of an Observation or a component, as read.
pub(super) struct Values<'a> {
    pub quantity: Option<&'a QuantityIn>,
    pub codeable_concept: Option<&'a CodeableConceptIn>,
    pub boolean: Option<bool>,
    /// The `value[x]` elements present, by name, in R4's order (at most one is valid).
    pub present: Vec<&'static str>,
}

/// `values()` for a struct with the eleven R4 `value[x]` fields. (`#[serde(flatten)]` would
/// share them, but serde does not support it together with `deny_unknown_fields`.)
macro_rules! values {
    ($ty:ty) => {
        impl $ty {
            pub fn values(&self) -> Values<'_> {
                let present = [
                    ("valueQuantity", self.value_quantity.is_some()),
                    (
                        "valueCodeableConcept",
                        self.value_codeable_concept.is_some(),
                    ),
                    ("valueString", self.value_string.is_some()),
                    ("valueBoolean", self.value_boolean.is_some()),
                    ("valueInteger", self.value_integer.is_some()),
                    ("valueRange", self.value_range.is_some()),
                    ("valueRatio", self.value_ratio.is_some()),
                    ("valueSampledData", self.value_sampled_data.is_some()),
                    ("valueTime", self.value_time.is_some()),
                    ("valueDateTime", self.value_date_time.is_some()),
                    ("valuePeriod", self.value_period.is_some()),
                ]
                .into_iter()
                .filter(|(_, present)| *present)
                .map(|(name, _)| name)
                .collect();
                Values {
                    quantity: self.value_quantity.as_ref(),
                    codeable_concept: self.value_codeable_concept.as_ref(),
                    boolean: self.value_boolean,
                    present,
                }
            }
        }
    };
}
values!(ObservationIn);
values!(ComponentIn);

/// R4 `Meta`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
pub(super) struct MetaIn {
    pub id: Option<IgnoredAny>,
    pub extension: Option<IgnoredAny>,
    pub version_id: Option<IgnoredAny>,
    #[serde(rename = "_versionId")]
    pub version_id_ext: Option<IgnoredAny>,
    pub last_updated: Option<IgnoredAny>,
    #[serde(rename = "_lastUpdated")]
    pub last_updated_ext: Option<IgnoredAny>,
    pub source: Option<IgnoredAny>,
    #[serde(rename = "_source")]
    pub source_ext: Option<IgnoredAny>,
    #[serde(default)]
    pub profile: Vec<String>,
    #[serde(rename = "_profile")]
    pub profile_ext: Option<IgnoredAny>,
    pub security: Option<IgnoredAny>,
    pub tag: Option<IgnoredAny>,
}

/// R4 `Identifier`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct IdentifierIn {
    pub id: Option<IgnoredAny>,
    pub extension: Option<IgnoredAny>,
    #[serde(rename = "use")]
    pub use_: Option<IgnoredAny>,
    #[serde(rename = "_use")]
    pub use_ext: Option<IgnoredAny>,
    #[serde(rename = "type")]
    pub type_: Option<IgnoredAny>,
    pub system: Option<String>,
    #[serde(rename = "_system")]
    pub system_ext: Option<IgnoredAny>,
    pub value: Option<String>,
    #[serde(rename = "_value")]
    pub value_ext: Option<IgnoredAny>,
    pub period: Option<IgnoredAny>,
    pub assigner: Option<IgnoredAny>,
}

/// R4 `CodeableConcept`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct CodeableConceptIn {
    pub id: Option<IgnoredAny>,
    pub extension: Option<IgnoredAny>,
    #[serde(default)]
    pub coding: Vec<CodingIn>,
    pub text: Option<String>,
    #[serde(rename = "_text")]
    pub text_ext: Option<IgnoredAny>,
}

/// R4 `Coding`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
pub(super) struct CodingIn {
    pub id: Option<IgnoredAny>,
    pub extension: Option<IgnoredAny>,
    pub system: Option<String>,
    #[serde(rename = "_system")]
    pub system_ext: Option<IgnoredAny>,
    pub version: Option<IgnoredAny>,
    #[serde(rename = "_version")]
    pub version_ext: Option<IgnoredAny>,
    pub code: Option<String>,
    #[serde(rename = "_code")]
    pub code_ext: Option<IgnoredAny>,
    pub display: Option<IgnoredAny>,
    #[serde(rename = "_display")]
    pub display_ext: Option<IgnoredAny>,
    pub user_selected: Option<IgnoredAny>,
    #[serde(rename = "_userSelected")]
    pub user_selected_ext: Option<IgnoredAny>,
}

/// R4 `Quantity`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct QuantityIn {
    pub id: Option<IgnoredAny>,
    pub extension: Option<IgnoredAny>,
    pub value: Option<f64>,
    #[serde(rename = "_value")]
    pub value_ext: Option<IgnoredAny>,
    pub comparator: Option<IgnoredAny>,
    #[serde(rename = "_comparator")]
    pub comparator_ext: Option<IgnoredAny>,
    pub unit: Option<IgnoredAny>,
    #[serde(rename = "_unit")]
    pub unit_ext: Option<IgnoredAny>,
    pub system: Option<String>,
    #[serde(rename = "_system")]
    pub system_ext: Option<IgnoredAny>,
    pub code: Option<String>,
    #[serde(rename = "_code")]
    pub code_ext: Option<IgnoredAny>,
}

/// R4 `Reference`. `display` is never read (it may be a patient's name).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct ReferenceIn {
    pub id: Option<IgnoredAny>,
    pub extension: Option<IgnoredAny>,
    pub reference: Option<String>,
    #[serde(rename = "_reference")]
    pub reference_ext: Option<IgnoredAny>,
    #[serde(rename = "type")]
    pub type_: Option<String>,
    #[serde(rename = "_type")]
    pub type_ext: Option<IgnoredAny>,
    pub identifier: Option<IgnoredAny>,
    pub display: Option<IgnoredAny>,
    #[serde(rename = "_display")]
    pub display_ext: Option<IgnoredAny>,
}

/// R4 `Period`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct PeriodIn {
    pub id: Option<IgnoredAny>,
    pub extension: Option<IgnoredAny>,
    pub start: Option<String>,
    #[serde(rename = "_start")]
    pub start_ext: Option<IgnoredAny>,
    pub end: Option<String>,
    #[serde(rename = "_end")]
    pub end_ext: Option<IgnoredAny>,
}

/// R4 `Bundle` (a `Resource`, not a `DomainResource`: no `text`, `extension`, `contained`).
/// `entry` is read element by element, so that one bad entry of a batch spoils only itself.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
pub(super) struct BundleIn {
    pub resource_type: IgnoredAny,
    pub id: Option<IgnoredAny>,
    #[serde(rename = "_id")]
    pub id_ext: Option<IgnoredAny>,
    pub meta: Option<IgnoredAny>,
    pub implicit_rules: Option<IgnoredAny>,
    #[serde(rename = "_implicitRules")]
    pub implicit_rules_ext: Option<IgnoredAny>,
    pub language: Option<IgnoredAny>,
    #[serde(rename = "_language")]
    pub language_ext: Option<IgnoredAny>,
    pub identifier: Option<IgnoredAny>,
    #[serde(rename = "type")]
    pub type_: Option<String>,
    #[serde(rename = "_type")]
    pub type_ext: Option<IgnoredAny>,
    pub timestamp: Option<IgnoredAny>,
    #[serde(rename = "_timestamp")]
    pub timestamp_ext: Option<IgnoredAny>,
    pub total: Option<IgnoredAny>,
    #[serde(rename = "_total")]
    pub total_ext: Option<IgnoredAny>,
    pub link: Option<IgnoredAny>,
    pub entry: Option<IgnoredAny>,
    pub signature: Option<IgnoredAny>,
}

/// R4 `Bundle.entry`; `resource` is read as an Observation afterwards.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
pub(super) struct EntryIn {
    pub id: Option<IgnoredAny>,
    pub extension: Option<IgnoredAny>,
    pub modifier_extension: Option<IgnoredAny>,
    pub link: Option<IgnoredAny>,
    pub full_url: Option<String>,
    #[serde(rename = "_fullUrl")]
    pub full_url_ext: Option<IgnoredAny>,
    pub resource: Option<IgnoredAny>,
    pub search: Option<IgnoredAny>,
    pub request: Option<RequestIn>,
    pub response: Option<IgnoredAny>,
}

/// R4 `Bundle.entry.request`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
pub(super) struct RequestIn {
    pub id: Option<IgnoredAny>,
    pub extension: Option<IgnoredAny>,
    pub modifier_extension: Option<IgnoredAny>,
    pub method: Option<String>,
    #[serde(rename = "_method")]
    pub method_ext: Option<IgnoredAny>,
    pub url: Option<String>,
    #[serde(rename = "_url")]
    pub url_ext: Option<IgnoredAny>,
    pub if_none_match: Option<IgnoredAny>,
    #[serde(rename = "_ifNoneMatch")]
    pub if_none_match_ext: Option<IgnoredAny>,
    pub if_modified_since: Option<IgnoredAny>,
    #[serde(rename = "_ifModifiedSince")]
    pub if_modified_since_ext: Option<IgnoredAny>,
    pub if_match: Option<IgnoredAny>,
    #[serde(rename = "_ifMatch")]
    pub if_match_ext: Option<IgnoredAny>,
    pub if_none_exist: Option<String>,
    #[serde(rename = "_ifNoneExist")]
    pub if_none_exist_ext: Option<IgnoredAny>,
}
