//! Bluetooth SIG health characteristics relayed by a gateway.

mod medfloat;

pub use medfloat::{Medfloat, Special, decode_float, decode_sfloat, encode_float, encode_sfloat};
