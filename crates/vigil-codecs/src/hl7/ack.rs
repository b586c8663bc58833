//! The application acknowledgement (HL7 v2.6 §2.9 "message processing rules", §2.14 ACK, MSA,
//! ERR; reference §4).

use chrono::{FixedOffset, Offset, Utc};
use vigil_model::Instant;

use super::dtm;
use super::oru::Hl7Version;
use super::wire::{
    EncodingCharacters, SEGMENT_TERMINATOR, Segment, component, escape, read_encoding_characters,
    repetitions,
};
use super::{ErrorCode, ErrorLocation, Hl7Error};

/// MSA-1 (HL7 table 0008). Commit ACKs (`CA`/`CE`/`CR`) are not sent: PCD-01 senders ask for none
/// (MSH-15 `NE`, reference §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckCode {
    /// `AA`: accepted and committed.
    Accept,
    /// `AE`: application error; the sender may correct or retransmit (a GE monitor retransmits the
    /// same message up to 3 attempts in all).
    Error,
    /// `AR`: rejected; retransmitting unchanged cannot succeed (a GE monitor does not retry and
    /// drops the connection).
    Reject,
}

impl AckCode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::Accept => "AA",
            AckCode::Error => "AE",
            AckCode::Reject => "AR",
        }
    }
}

/// ERR-4 (HL7 table 0516).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "E",
            Severity::Warning => "W",
            Severity::Information => "I",
        }
    }
}

/// The content of one ERR segment (v2.5+): ERR-2 location, ERR-3 code, ERR-4 severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AckError {
    pub location: Option<ErrorLocation>,
    pub code: ErrorCode,
    pub severity: Severity,
}

impl AckError {
    /// 207 "Application internal error", severity E, for a message that decoded but could not be
    /// committed (the store failed): answer `AE` so the sender retransmits.
    pub fn internal() -> Self {
        AckError {
            location: None,
            code: ErrorCode::ApplicationInternalError,
            severity: Severity::Error,
        }
    }
}

/// MSH-15/MSH-16 (HL7 table 0155): when the sender wants an acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckCondition {
    /// `AL`: always.
    Always,
    /// `NE`: never.
    Never,
    /// `ER`: only for an error or rejection.
    ErrorOnly,
    /// `SU`: only on success.
    SuccessOnly,
}

impl AckCondition {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "AL" => Some(AckCondition::Always),
            "NE" => Some(AckCondition::Never),
            "ER" => Some(AckCondition::ErrorOnly),
            "SU" => Some(AckCondition::SuccessOnly),
            _ => None,
        }
    }
}

/// What an acknowledgement needs from the original MSH, taken as sent (escaped form) so that it is
/// echoed exactly in the original encoding characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckContext {
    encoding: EncodingCharacters,
    sending_application: String,
    sending_facility: String,
    receiving_application: String,
    receiving_facility: String,
    control_id: String,
    version: &'static str,
    processing_id: &'static str,
    trigger_event: String,
    offset: FixedOffset,
    accept_ack: Option<AckCondition>,
    application_ack: Option<AckCondition>,
}

/// Echoed header values longer than this are dropped (an ACK stays small whatever was sent).
const MAX_ECHO: usize = 256;
/// How much of a message is read for its MSH.
const MAX_MSH: usize = 4096;

impl AckContext {
    /// Reads what it can of a message's MSH, for any bytes (never fails, never panics):
    /// delimiters (else `|^~\&`), MSH-3/4/5/6 and MSH-10 (else empty; a value that holds a control
    /// character, is not UTF-8 or is longer than 256 bytes is dropped, not echoed), MSH-9's event
    /// (else `R01`), MSH-11 (`P`, `D` or `T`, else `P`), MSH-12 (2.5, 2.5.1 or 2.6, else `2.6`, the
    /// hub's own, as reference `bad_01` shows), MSH-7's UTC offset (else +0000), MSH-15/16.
    pub fn best_effort(bytes: &[u8]) -> AckContext {
        let mut ctx = AckContext {
            encoding: EncodingCharacters::default(),
            sending_application: String::new(),
            sending_facility: String::new(),
            receiving_application: String::new(),
            receiving_facility: String::new(),
            control_id: String::new(),
            version: Hl7Version::V2_6.as_str(),
            processing_id: "P",
            trigger_event: "R01".to_owned(),
            offset: utc(),
            accept_ack: None,
            application_ack: None,
        };
        if !bytes.starts_with(b"MSH") {
            return ctx;
        }
        let Ok((enc, _)) = read_encoding_characters(bytes) else {
            return ctx;
        };
        let head = &bytes[..bytes.len().min(MAX_MSH)];
        let end = head
            .iter()
            .position(|&b| b == SEGMENT_TERMINATOR || b == b'\n')
            .unwrap_or(head.len());
        let (text, cut) = match std::str::from_utf8(&head[..end]) {
            Ok(text) => (text, end == head.len() && head.len() < bytes.len()),
            // Only fields wholly before the first invalid byte are trusted.
            Err(e) => (
                std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or(""),
                true,
            ),
        };
        // The last field of a cut segment may be incomplete: drop it.
        let text = if cut {
            match text.rfind(enc.field as char) {
                Some(i) => &text[..i],
                None => "",
            }
        } else {
            text
        };
        if text.len() < 4 {
            return ctx;
        }
        ctx.encoding = enc;
        let msh = Segment::split(text, &enc);
        let echo = |n: usize| {
            let raw = msh.field(n);
            if raw.len() <= MAX_ECHO && !raw.chars().any(char::is_control) {
                raw.to_owned()
            } else {
                String::new()
            }
        };
        ctx.sending_application = echo(3);
        ctx.sending_facility = echo(4);
        ctx.receiving_application = echo(5);
        ctx.receiving_facility = echo(6);
        ctx.control_id = echo(10);
        let first = |n: usize| repetitions(msh.field(n), &enc).next().unwrap_or("");
        let part = |n: usize, c: usize| component(first(n), c, &enc);
        if let Some(version) = Hl7Version::parse(part(12, 1)) {
            ctx.version = version.as_str();
        }
        ctx.processing_id = match part(11, 1) {
            "D" => "D",
            "T" => "T",
            _ => "P",
        };
        let event = part(9, 2);
        if event.len() == 3
            && event
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            ctx.trigger_event = event.to_owned();
        }
        if let Ok(Some(offset)) = dtm::parse(part(7, 1)).map(|t| t.offset) {
            ctx.offset = offset;
        }
        ctx.accept_ack = AckCondition::parse(first(15));
        ctx.application_ack = AckCondition::parse(first(16));
        ctx
    }

    /// The original MSH-10 as sent (escaped form), echoed in MSA-2; empty when it was missing or
    /// unreadable.
    pub fn original_control_id(&self) -> &str {
        &self.control_id
    }

    /// MSH-15, the accept (commit) acknowledgement the sender asked for.
    pub fn accept_ack(&self) -> Option<AckCondition> {
        self.accept_ack
    }

    /// MSH-16, the application acknowledgement the sender asked for.
    pub fn application_ack(&self) -> Option<AckCondition> {
        self.application_ack
    }

    /// Whether to send an application ACK with this code: per MSH-16 (v2.6 §2.9.3, enhanced
    /// mode); with MSH-16 empty or unknown, always (original mode, §2.9.2). PCD-01 senders send
    /// `AL`.
    pub fn application_ack_wanted(&self, code: AckCode) -> bool {
        match self.application_ack {
            None | Some(AckCondition::Always) => true,
            Some(AckCondition::Never) => false,
            Some(AckCondition::ErrorOnly) => code != AckCode::Accept,
            Some(AckCondition::SuccessOnly) => code == AckCode::Accept,
        }
    }

    pub fn encoding(&self) -> EncodingCharacters {
        self.encoding
    }
}

fn utc() -> FixedOffset {
    Utc.fix()
}

/// Builds the acknowledgement of the message `context` was read from, unframed (segments end
/// with 0x0D; frame it with [`crate::mllp::MllpCodec`]).
///
/// `now` becomes MSH-7, written in the original MSH-7's UTC offset; `control_id` is this ACK's own
/// MSH-10 (escaped as needed). `error` adds an ERR segment (normally with `Error`/`Reject`; a
/// warning may accompany `Accept`). Reference §4:
///
/// ```text
/// MSH|^~\&|IOMT_HUB|HOSPITAL|MONITOR_GW^0012340000000001^EUI-64|ICU_EAST|20250114103001+0100||ACK^R01^ACK|ACK00001|P|2.6
/// MSA|AA|ICU1-000001
/// ```
pub fn build_ack(
    context: &AckContext,
    code: AckCode,
    error: Option<&AckError>,
    now: Instant,
    control_id: &str,
) -> Vec<u8> {
    let enc = &context.encoding;
    let f = enc.field as char;
    let c = enc.component as char;
    let mut out = String::with_capacity(256);
    out.push_str("MSH");
    out.push(f);
    out.extend(enc.msh2().iter().map(|&b| b as char));
    // MSH-3/4 are the hub (the original receiver), MSH-5/6 the original sender.
    for field in [
        &context.receiving_application,
        &context.receiving_facility,
        &context.sending_application,
        &context.sending_facility,
    ] {
        out.push(f);
        out.push_str(field);
    }
    out.push(f);
    out.push_str(&dtm::format(now, context.offset));
    out.push(f);
    out.push(f);
    out.push_str(&format!("ACK{c}{}{c}ACK", context.trigger_event));
    out.push(f);
    escape(control_id, enc, &mut out);
    out.push(f);
    out.push_str(context.processing_id);
    out.push(f);
    out.push_str(context.version);
    out.push('\r');

    out.push_str("MSA");
    out.push(f);
    out.push_str(code.as_str());
    out.push(f);
    out.push_str(&context.control_id);
    out.push('\r');

    if let Some(error) = error {
        // ERR-1 (ELD) is kept for backward compatibility only and left empty (ERR segment, v2.5 and later).
        out.push_str("ERR");
        out.push(f);
        out.push(f);
        if let Some(location) = error.location {
            out.push_str(&location.to_erl(c));
        }
        out.push(f);
        out.push_str(&format!(
            "{}{c}{}{c}HL70357",
            error.code.code(),
            error.code.text()
        ));
        out.push(f);
        out.push_str(error.severity.as_str());
        out.push('\r');
    }
    out.into_bytes()
}

/// The acknowledgement for a message [`super::decode_oru`] refused: [`AckContext::best_effort`]
/// on its bytes, MSA-1 from [`Hl7Error::ack_code`], ERR from [`Hl7Error::ack_error`].
pub fn build_nack(bytes: &[u8], error: &Hl7Error, now: Instant, control_id: &str) -> Vec<u8> {
    build_ack(
        &AckContext::best_effort(bytes),
        error.ack_code(),
        Some(&error.ack_error()),
        now,
        control_id,
    )
}
