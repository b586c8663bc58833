//! Bytes to model: decoders for what devices and integrations send. Pure and synchronous; every
//! decoder has its bad cases tested and a fuzz target (`fuzz/`).

pub mod ble;
pub mod device_json;
pub mod hl7;
mod json;
pub mod mllp;
pub mod template;

pub use ble::{
    BleAddress, BleError, Characteristic, CharacteristicValue, GatewayLimits, GatewayMessage,
    Medfloat, decode_characteristic, decode_gateway_message,
};
pub use device_json::event::{EventError, decode_device_event};
pub use device_json::{
    DecodeLimits, DecodedMessage, PayloadError, RejectReason, RejectedItem, TimestampError,
    WaveformProblem, decode_device_message,
};
pub use hl7::{
    AckCode, AckContext, AckError, Hl7Error, Hl7Item, Hl7Limits, OruMessage, build_ack, build_nack,
    decode_oru,
};
pub use mllp::{MllpCodec, MllpError};
pub use template::{
    DryRun, DryRunReading, DryRunRefusal, DryRunRejection, Mapped, Rejection, RejectionReason,
    RuleRef, Template, TemplateApplyError, TemplateError, TemplateFormat, TemplateLimits,
    TemplateProblem, TimeError, TimeFormat,
};
