//! The gateway message: one characteristic value a BLE gateway relays (see the module
//! documentation of [`crate::ble`] for the contract).

use std::fmt;
use std::str::FromStr;

use chrono::DateTime;
use vigil_model::{Instant, Reading};

use super::error::HexProblem;
use super::reader::MAX_VALUE_LEN;
use super::{BleError, Characteristic, CharacteristicValue, Timing, UserId, decode_characteristic};
use crate::device_json::{
    FieldError, PayloadError, collect_fields, echo, json_error, parse_time, present, utf8_error,
};
use crate::json::Json;

/// The members a gateway message may have.
pub const GATEWAY_FIELDS: [&str; 4] = ["ts", "peripheral", "characteristic", "data"];

/// Bounds applied to one gateway message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayLimits {
    /// Largest accepted message, in bytes, checked before parsing. Default 4 KiB: the longest
    /// characteristic value (512 bytes) is 1024 hex digits, and the other members are short.
    pub max_bytes: usize,
    /// How far after the time of receipt `ts` or a characteristic's time stamp may lie.
    /// Default 5 minutes, as for the device JSON payload.
    pub max_future_skew: chrono::Duration,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        GatewayLimits {
            max_bytes: 4096,
            max_future_skew: chrono::Duration::minutes(5),
        }
    }
}

/// A Bluetooth device address (48 bits), written most significant octet first as in
/// `C4:7C:8D:6A:11:02`. Parsing accepts either case; `Display` writes the canonical upper-case
/// colon form, the form to look a device up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BleAddress(pub [u8; 6]);

impl BleAddress {
    /// Six two-digit hex octets separated by colons, nothing else.
    pub fn parse(text: &str) -> Option<BleAddress> {
        let bytes = text.as_bytes();
        if bytes.len() != 17 {
            return None;
        }
        let mut octets = [0u8; 6];
        for (i, octet) in octets.iter_mut().enumerate() {
            let at = i * 3;
            if i > 0 && bytes[at - 1] != b':' {
                return None;
            }
            *octet = hex_pair(bytes[at], bytes[at + 1])?;
        }
        Some(BleAddress(octets))
    }
}

impl FromStr for BleAddress {
    type Err = BleError;
    fn from_str(text: &str) -> Result<Self, BleError> {
        BleAddress::parse(text).ok_or_else(|| BleError::BadAddress { text: echo(text) })
    }
}

impl fmt::Display for BleAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02X}:{b:02X}:{c:02X}:{d:02X}:{e:02X}:{g:02X}")
    }
}

/// The Bluetooth Base UUID's tail: a 16-bit UUID `xxxx` is `0000xxxx-0000-1000-8000-00805f9b34fb`
/// (Bluetooth Core Specification Vol 3 Part B §2.5.1).
const BASE_UUID_TAIL: &str = "-0000-1000-8000-00805f9b34fb";

/// Parses a characteristic UUID in the accepted forms into its 16-bit value: `2a35`, `2A35`,
/// `0x2A35`, `00002a35-0000-1000-8000-00805f9b34fb` (any case).
pub fn parse_uuid16(text: &str) -> Option<u16> {
    if text.len() > 36 || !text.is_ascii() {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    let digits = if let Some(rest) = lower.strip_prefix("0x") {
        rest
    } else if let Some(head) = lower.strip_suffix(BASE_UUID_TAIL) {
        head.strip_prefix("0000")?
    } else {
        &lower
    };
    let d = digits.as_bytes();
    if d.len() != 4 {
        return None;
    }
    Some(u16::from_be_bytes([
        hex_pair(d[0], d[1])?,
        hex_pair(d[2], d[3])?,
    ]))
}

/// One decoded gateway message.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayMessage {
    /// The peripheral that sent the value: the key to look its device up by.
    pub peripheral: BleAddress,
    pub characteristic: Characteristic,
    /// The gateway's `ts`, when it sent one.
    pub gateway_time: Option<Instant>,
    /// The characteristic value, field by field (RR-intervals, BMI, sequence numbers, status
    /// bits: everything the readings do not carry).
    pub value: CharacteristicValue,
    /// What to store: the measurements grouped with `assemble_readings` (a blood-pressure panel
    /// is one reading), then the measurands reported without a value
    /// (`ObservationValue::Absent`).
    pub readings: Vec<Reading>,
}

impl GatewayMessage {
    /// The user of a multi-user device (blood-pressure monitor, scale), when the value names one.
    pub fn user_id(&self) -> Option<UserId> {
        self.value.user_id()
    }
}

/// Decodes one gateway message (see the module documentation of [`crate::ble`] for the
/// contract): the envelope, then the characteristic value, then its readings.
///
/// `received` is when Vigil received the message: the time of values that carry none, and the
/// reference for [`GatewayLimits::max_future_skew`]. Pure and deterministic; never panics.
pub fn decode_gateway_message(
    bytes: &[u8],
    received: Instant,
    limits: &GatewayLimits,
) -> Result<GatewayMessage, BleError> {
    if bytes.len() > limits.max_bytes {
        return Err(BleError::Envelope(PayloadError::TooLarge {
            size: bytes.len(),
            max: limits.max_bytes,
        }));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| BleError::Envelope(utf8_error(bytes, e.valid_up_to())))?;
    let root = Json::parse(text).map_err(|e| BleError::Envelope(json_error(e)))?;
    let Json::Object(members) = &root else {
        return Err(BleError::Envelope(PayloadError::WrongShape {
            pointer: "",
            expected: "a JSON object",
            found: root.describe(),
        }));
    };
    let [ts, peripheral, characteristic, data] =
        collect_fields(members, &GATEWAY_FIELDS).map_err(|e| match e {
            FieldError::Unknown { field, suggestion } => {
                BleError::UnknownField { field, suggestion }
            }
            FieldError::Duplicate(field) => BleError::DuplicateField { field },
        })?;

    let peripheral = required_str(
        peripheral,
        "peripheral",
        "a string such as \"C4:7C:8D:6A:11:02\"",
    )?
    .parse::<BleAddress>()?;
    let uuid_text = required_str(
        characteristic,
        "characteristic",
        "a string such as \"2a35\"",
    )?;
    let uuid = parse_uuid16(uuid_text).ok_or_else(|| BleError::BadCharacteristic {
        text: echo(uuid_text),
    })?;
    let characteristic =
        Characteristic::from_uuid16(uuid).ok_or(BleError::UnsupportedCharacteristic { uuid })?;
    let data = required_str(data, "data", "a string of hex digits")?;
    if data.len() > 2 * MAX_VALUE_LEN {
        return Err(BleError::ValueTooLong {
            characteristic,
            len: data.len().div_ceil(2),
            max: MAX_VALUE_LEN,
        });
    }
    let value_bytes = decode_hex(data).map_err(|problem| BleError::BadHex { problem })?;

    let (gateway_time, device_offset) = match present(ts) {
        None => (None, None),
        Some(raw) => {
            let time = parse_time(raw).map_err(|error| BleError::BadTimestamp { error })?;
            // The characteristic's time stamp is the device's wall clock; the gateway sits
            // within radio range of it, so the offset the gateway writes is the device's.
            let offset = raw
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| *t.offset());
            (Some(time), offset)
        }
    };
    if let Some(time) = gateway_time
        && time.signed_duration_since(received) > limits.max_future_skew
    {
        // Its clock is also what the device's time stamp is read by: refused even when unused.
        return Err(BleError::FutureTimestamp {
            characteristic,
            what: "ts",
            time,
            received,
            max_skew: limits.max_future_skew,
        });
    }

    let value = decode_characteristic(characteristic, &value_bytes)?;
    let timing = Timing {
        received,
        gateway_time,
        device_offset,
        max_future_skew: limits.max_future_skew,
    };
    let readings = value.measurements(&timing)?.into_readings();
    Ok(GatewayMessage {
        peripheral,
        characteristic,
        gateway_time,
        value,
        readings,
    })
}

fn required_str<'j>(
    member: Option<&'j Json<'_>>,
    field: &'static str,
    expected: &'static str,
) -> Result<&'j str, BleError> {
    match present(member) {
        None => Err(BleError::MissingField { field }),
        Some(Json::String(s)) => Ok(s),
        Some(other) => Err(BleError::WrongType {
            field,
            expected,
            found: other.describe(),
        }),
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn hex_pair(hi: u8, lo: u8) -> Option<u8> {
    Some(hex_digit(hi)? << 4 | hex_digit(lo)?)
}

/// Hex digits (either case), two per byte, nothing else.
fn decode_hex(text: &str) -> Result<Vec<u8>, HexProblem> {
    let digits = text.as_bytes();
    if let Some(index) = digits.iter().position(|&c| hex_digit(c).is_none()) {
        // Every byte before it is an ASCII digit, so the byte index is the character index.
        return Err(HexProblem::NotHex { index });
    }
    if !digits.len().is_multiple_of(2) {
        return Err(HexProblem::OddLength { len: digits.len() });
    }
    digits
        .chunks_exact(2)
        .map(|pair| hex_pair(pair[0], pair[1]).ok_or(HexProblem::NotHex { index: 0 }))
        .collect()
}
