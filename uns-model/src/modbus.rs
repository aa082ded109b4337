//! How Modbus tags are addressed in the model: the register table, the 0-based offset, an
//! optional bit, and the byte/word order of multi-register values.
//!
//! Address notation (what users type in TOML, CSV and the UI):
//!
//! | form | example | means |
//! |---|---|---|
//! | `hr:OFFSET` / `ir:` / `coil:` / `di:` | `hr:100` | holding register at 0-based offset 100 |
//! | `hr:OFFSET.BIT` / `ir:OFFSET.BIT` | `hr:100.3` | bit 3 (0 = least significant) of that register |
//! | classic 1-based `4xxxx`, `3xxxx`, `1xxxx`, `0xxxx` (5 or 6 digits) | `40101` | the same as `hr:100` |
//!
//! Classic addresses are accepted and normalised to the first form on import.

use std::fmt;

/// The four Modbus data tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RegisterKind {
    Coil,
    DiscreteInput,
    InputRegister,
    HoldingRegister,
}

impl RegisterKind {
    pub fn prefix(self) -> &'static str {
        match self {
            RegisterKind::Coil => "coil",
            RegisterKind::DiscreteInput => "di",
            RegisterKind::InputRegister => "ir",
            RegisterKind::HoldingRegister => "hr",
        }
    }

    /// Bits (coils, discrete inputs) rather than 16-bit registers.
    pub fn is_bit(self) -> bool {
        matches!(self, RegisterKind::Coil | RegisterKind::DiscreteInput)
    }

    /// Whether the protocol has a write function for this table.
    pub fn is_writable(self) -> bool {
        matches!(self, RegisterKind::Coil | RegisterKind::HoldingRegister)
    }

    /// The most a single read may ask for (function codes 1/2: 2000 bits, 3/4: 125 registers).
    pub fn max_per_read(self) -> u16 {
        if self.is_bit() { 2000 } else { 125 }
    }
}

/// Where a Modbus tag lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModbusAddress {
    pub kind: RegisterKind,
    /// 0-based offset in the table.
    pub offset: u16,
    /// A single bit of a register, 0 = least significant.
    pub bit: Option<u8>,
}

const FORMS: &str = "hr:OFFSET, ir:OFFSET, coil:OFFSET, di:OFFSET (0-based), hr:OFFSET.BIT, \
                     or classic 1-based 4xxxx, 3xxxx, 1xxxx, 0xxxx";

impl std::str::FromStr for ModbusAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<ModbusAddress, String> {
        let bad = |why: &str| format!("{why}; write {FORMS}");
        let (main, bit) = match s.split_once('.') {
            Some((main, bit)) => {
                let bit = bit
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b < 16)
                    .ok_or_else(|| bad("the bit must be 0 to 15"))?;
                (main, Some(bit))
            }
            None => (s, None),
        };
        let (kind, offset) = if let Some((prefix, offset)) = main.split_once(':') {
            let kind = [
                RegisterKind::Coil,
                RegisterKind::DiscreteInput,
                RegisterKind::InputRegister,
                RegisterKind::HoldingRegister,
            ]
            .into_iter()
            .find(|k| k.prefix() == prefix.to_ascii_lowercase())
            .ok_or_else(|| bad(&format!("unknown register table {prefix:?}")))?;
            let offset = offset
                .parse::<u16>()
                .map_err(|_| bad("the offset must be a number from 0 to 65535"))?;
            (kind, offset)
        } else {
            // Classic: a table digit, then a 1-based number in 4 or 5 digits.
            if !(5..=6).contains(&main.len()) || !main.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("not an address"));
            }
            let kind = match main.as_bytes()[0] {
                b'0' => RegisterKind::Coil,
                b'1' => RegisterKind::DiscreteInput,
                b'3' => RegisterKind::InputRegister,
                b'4' => RegisterKind::HoldingRegister,
                _ => return Err(bad("a classic address starts with 0, 1, 3 or 4")),
            };
            let number: u32 = main[1..].parse().map_err(|_| bad("not an address"))?;
            if !(1..=65536).contains(&number) {
                return Err(bad("a classic address counts from 1"));
            }
            (kind, (number - 1) as u16)
        };
        if bit.is_some() && kind.is_bit() {
            return Err(bad("a bit can only be taken from a register (hr or ir)"));
        }
        Ok(ModbusAddress { kind, offset, bit })
    }
}

impl fmt::Display for ModbusAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.prefix(), self.offset)?;
        match self.bit {
            Some(bit) => write!(f, ".{bit}"),
            None => Ok(()),
        }
    }
}

/// Byte and word order of a multi-register value; see `southbound::modbus::codec` for the
/// table of names. `ABCD` (big-endian, high word first) is the Modbus convention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ByteOrder {
    /// The two bytes of each register are swapped (`BADC`).
    pub byte_swap: bool,
    /// The registers come least significant first (`CDAB`).
    pub word_swap: bool,
}

impl ByteOrder {
    pub const ABCD: ByteOrder = ByteOrder {
        byte_swap: false,
        word_swap: false,
    };
    pub const BADC: ByteOrder = ByteOrder {
        byte_swap: true,
        word_swap: false,
    };
    pub const CDAB: ByteOrder = ByteOrder {
        byte_swap: false,
        word_swap: true,
    };
    pub const DCBA: ByteOrder = ByteOrder {
        byte_swap: true,
        word_swap: true,
    };
    const NAMES: [(&'static str, &'static str, ByteOrder); 4] = [
        ("ABCD", "ABCDEFGH", ByteOrder::ABCD),
        ("BADC", "BADCFEHG", ByteOrder::BADC),
        ("CDAB", "GHEFCDAB", ByteOrder::CDAB),
        ("DCBA", "HGFEDCBA", ByteOrder::DCBA),
    ];

    /// The name of this order for a value of `registers` registers.
    pub fn name(self, registers: usize) -> &'static str {
        let (short, long, _) = ByteOrder::NAMES
            .into_iter()
            .find(|(_, _, o)| *o == self)
            .unwrap_or(ByteOrder::NAMES[0]);
        if registers > 2 { long } else { short }
    }
}

impl std::str::FromStr for ByteOrder {
    type Err = String;
    fn from_str(s: &str) -> Result<ByteOrder, String> {
        let upper = s.to_ascii_uppercase();
        ByteOrder::NAMES
            .into_iter()
            .find(|(short, long, _)| upper == *short || upper == *long)
            .map(|(_, _, o)| o)
            .ok_or_else(|| {
                format!(
                    "unknown byte order {s:?}; allowed: ABCD, BADC, CDAB, DCBA (32-bit) or \
                     ABCDEFGH, BADCFEHG, GHEFCDAB, HGFEDCBA (64-bit)"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Result<String, String> {
        s.parse::<ModbusAddress>().map(|a| a.to_string())
    }

    #[test]
    fn canonical_and_classic_forms_normalise_to_zero_based() {
        assert_eq!(a("hr:100").as_deref(), Ok("hr:100"));
        assert_eq!(a("HR:7.15").as_deref(), Ok("hr:7.15"));
        assert_eq!(a("40101").as_deref(), Ok("hr:100"));
        assert_eq!(a("400001").as_deref(), Ok("hr:0"));
        assert_eq!(a("30001").as_deref(), Ok("ir:0"));
        assert_eq!(a("10010").as_deref(), Ok("di:9"));
        assert_eq!(a("00001").as_deref(), Ok("coil:0"));
        assert_eq!(a("465536").as_deref(), Ok("hr:65535"));
        assert_eq!(a("40001.2").as_deref(), Ok("hr:0.2"));
    }

    #[test]
    fn bad_addresses_say_what_is_allowed() {
        for bad in [
            "40000", "20001", "hr:70000", "xx:1", "hr:1.16", "coil:1.0", "4001", "hr",
        ] {
            let err = a(bad).unwrap_err();
            assert!(err.contains("hr:OFFSET"), "{bad}: {err}");
        }
    }

    #[test]
    fn byte_orders_parse_by_either_name() {
        assert_eq!("cdab".parse::<ByteOrder>(), Ok(ByteOrder::CDAB));
        assert_eq!("GHEFCDAB".parse::<ByteOrder>(), Ok(ByteOrder::CDAB));
        assert_eq!(ByteOrder::CDAB.name(4), "GHEFCDAB");
        assert_eq!(ByteOrder::BADC.name(2), "BADC");
        assert!(
            "ACBD"
                .parse::<ByteOrder>()
                .unwrap_err()
                .contains("allowed: ABCD")
        );
    }
}
