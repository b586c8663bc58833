//! A cursor over one characteristic value that enforces the decoder rules of
//! `shared/reference/ble_gatt.md`: every announced field in full, nothing after the last one.

use super::datetime::BleDateTime;
use super::medfloat::{Medfloat, decode_float, decode_sfloat};
use super::{BleError, Characteristic};

/// The longest attribute value ATT allows (Bluetooth Core Specification Vol 3 Part F §3.2.9):
/// a longer value cannot be a characteristic value, whatever the gateway says.
pub const MAX_VALUE_LEN: usize = 512;

pub(crate) struct Reader<'a> {
    characteristic: Characteristic,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(characteristic: Characteristic, bytes: &'a [u8]) -> Result<Self, BleError> {
        if bytes.len() > MAX_VALUE_LEN {
            return Err(BleError::ValueTooLong {
                characteristic,
                len: bytes.len(),
                max: MAX_VALUE_LEN,
            });
        }
        Ok(Reader {
            characteristic,
            bytes,
            pos: 0,
        })
    }

    fn take<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], BleError> {
        let rest = &self.bytes[self.pos..];
        let Some((head, _)) = rest.split_first_chunk::<N>() else {
            return Err(BleError::Truncated {
                characteristic: self.characteristic,
                field,
                offset: self.pos,
                needed: N,
                available: self.bytes.len(),
            });
        };
        self.pos += N;
        Ok(*head)
    }

    /// The Flags octet; any of the characteristic's reserved (RFU) bits refuses the value.
    pub(crate) fn flags(&mut self, defined: u8) -> Result<u8, BleError> {
        let [flags] = self.take::<1>("Flags")?;
        let reserved = flags & !defined;
        if reserved != 0 {
            return Err(BleError::ReservedFlags {
                characteristic: self.characteristic,
                flags,
                reserved,
            });
        }
        Ok(flags)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, BleError> {
        Ok(self.take::<1>(field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, BleError> {
        Ok(u16::from_le_bytes(self.take(field)?))
    }

    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, BleError> {
        Ok(i16::from_le_bytes(self.take(field)?))
    }

    pub(crate) fn u24(&mut self, field: &'static str) -> Result<u32, BleError> {
        let [a, b, c] = self.take(field)?;
        Ok(u32::from_le_bytes([a, b, c, 0]))
    }

    pub(crate) fn sfloat(&mut self, field: &'static str) -> Result<Medfloat, BleError> {
        Ok(decode_sfloat(self.u16(field)?))
    }

    pub(crate) fn float(&mut self, field: &'static str) -> Result<Medfloat, BleError> {
        Ok(decode_float(u32::from_le_bytes(self.take(field)?)))
    }

    pub(crate) fn date_time(&mut self, field: &'static str) -> Result<BleDateTime, BleError> {
        let octets = self.take::<7>(field)?;
        BleDateTime::decode(octets).map_err(|problem| BleError::BadDateTime {
            characteristic: self.characteristic,
            field,
            problem,
        })
    }

    /// Everything not read yet (for a list that runs to the end of the value).
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        rest
    }

    /// Ends the value: bytes after the last announced field refuse it. The specifications do
    /// not settle this (`ble_gatt.md`, decoder rule 4); Vigil refuses, because a value longer
    /// than its flags say was built by a device (or a gateway) that disagrees with us about
    /// the layout, and then none of its fields can be trusted.
    pub(crate) fn finish(self) -> Result<(), BleError> {
        let extra = self.bytes.len() - self.pos;
        if extra > 0 {
            return Err(BleError::TrailingBytes {
                characteristic: self.characteristic,
                expected: self.pos,
                extra,
            });
        }
        Ok(())
    }

    pub(crate) fn characteristic(&self) -> Characteristic {
        self.characteristic
    }
}
