//! The unit policy of dispensing: whether a dispensed quantity can be taken
//! from a prescription's remaining quantity.
//!
//! The HL7 Europe MPD and IHE MPD guides let a prescription count in UCUM
//! units, EDQM units of presentation ("21 Vial") or packages, and a dispense
//! in others ("1" of a 10-vial package): "The dispensed quantity may differ
//! from the prescribed quantity" (HL7 Europe MPD logical model, B.1.9
//! Dispensed quantity). The gateway never converts or guesses:
//!
//! 1. A unit is its coded form, `Quantity.system` + `Quantity.code` (FHIR R4
//!    Quantity: `code` is "a computer processable form of the unit",
//!    `unit` "a human-readable form"; qty-3: a code needs its system). A
//!    prescription whose quantity has no coded unit is refused at push; a
//!    completed dispense whose quantity has none is refused (422).
//! 2. The same system and code are comparable.
//! 3. Different codes for the same unit of presentation are comparable when
//!    a `[[same_unit]]` row of `profiles/dispense-units.toml` lists both,
//!    with its source.
//! 4. Anything else is refused (422) with an OperationOutcome naming both
//!    units; UCUM `1` ("any countable item") gets its own explanation.
//!
//! The equivalences are data ([`UnitTable`], `profiles/dispense-units.toml`),
//! not rules written here.

use std::sync::OnceLock;

use serde::Deserialize;

/// The table shipped in `profiles/dispense-units.toml`.
const SHIPPED: &str = include_str!("../../../../profiles/dispense-units.toml");

/// A coded unit: `Quantity.system` and `Quantity.code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CodedUnit {
    /// `Quantity.system`.
    pub(crate) system: String,
    /// `Quantity.code`.
    pub(crate) code: String,
}

impl CodedUnit {
    fn key(&self) -> String {
        format!("{}|{}", self.system, self.code)
    }
}

impl std::fmt::Display for CodedUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "'{}' ({})", self.code, self.system)
    }
}

/// `profiles/dispense-units.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnitTable {
    /// UCUM codes that count items without saying which.
    pub(crate) any_countable_item: CountableItem,
    /// Codes naming one unit in several code systems.
    #[serde(default)]
    pub(crate) same_unit: Vec<SameUnit>,
}

/// `[any_countable_item]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(
    dead_code,
    reason = "deserialised so that every row must carry it; the table's test reads it"
)]
pub(crate) struct CountableItem {
    /// `system|code`.
    pub(crate) codes: Vec<String>,
    /// Where this comes from.
    pub(crate) source: String,
}

/// One `[[same_unit]]` row.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(
    dead_code,
    reason = "deserialised so that every row must carry it; the table's test reads it"
)]
pub(crate) struct SameUnit {
    /// What the unit is.
    pub(crate) name: String,
    /// `system|code` of each code naming it.
    pub(crate) codes: Vec<String>,
    /// Where the equivalence comes from.
    pub(crate) source: String,
}

/// Why a dispensed unit cannot be taken from a prescription's quantity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UnitMismatch {
    /// The dispensed quantity has no coded unit.
    Uncoded,
    /// The units differ and no row makes them the same.
    NotComparable {
        /// Why, in words, naming both units.
        message: String,
    },
}

impl UnitTable {
    /// The shipped table; an unreadable table (a build error caught by this
    /// module's tests) holds no equivalences, which only makes the gateway
    /// stricter.
    pub(crate) fn shipped() -> &'static UnitTable {
        static TABLE: OnceLock<UnitTable> = OnceLock::new();
        TABLE.get_or_init(|| toml::from_str(SHIPPED).unwrap_or_default())
    }

    /// Whether a quantity dispensed in `dispensed` can be taken from a
    /// prescription counting in `prescribed` (module documentation).
    pub(crate) fn compare(
        &self,
        prescribed: &CodedUnit,
        dispensed: Option<&CodedUnit>,
    ) -> Result<(), UnitMismatch> {
        let Some(dispensed) = dispensed else {
            return Err(UnitMismatch::Uncoded);
        };
        if prescribed == dispensed {
            return Ok(());
        }
        let (p, d) = (prescribed.key(), dispensed.key());
        if self
            .same_unit
            .iter()
            .any(|row| row.codes.contains(&p) && row.codes.contains(&d))
        {
            return Ok(());
        }
        let countable = |key: &str| self.any_countable_item.codes.iter().any(|c| c == key);
        let why = if countable(&d) {
            " (UCUM '1' counts any countable item, e.g. packages of the dispensed product, not the prescription's unit)"
        } else if countable(&p) {
            " (the prescription counts any countable item with UCUM '1'; send the dispensed quantity in '1' too)"
        } else {
            ""
        };
        Err(UnitMismatch::NotComparable {
            message: format!(
                "the dispensed quantity is in {dispensed} but the prescription counts in {prescribed}: these units are not comparable{why}; send the quantity in the prescription's unit"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(system: &str, code: &str) -> CodedUnit {
        CodedUnit {
            system: system.into(),
            code: code.into(),
        }
    }

    const UCUM: &str = "http://unitsofmeasure.org";
    const EDQM: &str = "http://standardterms.edqm.eu";
    const SCT: &str = "http://snomed.info/sct";

    #[test]
    fn the_shipped_table_reads_and_every_row_has_a_source() {
        let table: UnitTable = toml::from_str(SHIPPED).unwrap_or_else(|e| panic!("{e}"));
        assert!(!table.any_countable_item.codes.is_empty());
        assert!(!table.any_countable_item.source.trim().is_empty());
        assert!(!table.same_unit.is_empty());
        for row in &table.same_unit {
            assert!(row.codes.len() >= 2, "{}", row.name);
            assert!(!row.source.trim().is_empty(), "{}", row.name);
            assert!(row.codes.iter().all(|c| c.contains('|')), "{}", row.name);
        }
        assert_eq!(UnitTable::shipped().same_unit.len(), table.same_unit.len());
    }

    #[test]
    fn same_code_same_row_comparable_everything_else_refused() {
        let table = UnitTable::shipped();
        let vial = unit(EDQM, "15060000");
        assert_eq!(table.compare(&vial, Some(&vial)), Ok(()));
        assert_eq!(
            table.compare(&unit(UCUM, "g"), Some(&unit(UCUM, "g"))),
            Ok(())
        );
        // EDQM Tablet and SNOMED CT Tablet (unit of presentation): one row.
        assert_eq!(
            table.compare(&unit(EDQM, "15054000"), Some(&unit(SCT, "732936001"))),
            Ok(())
        );
        assert_eq!(
            table.compare(&unit(SCT, "732936001"), Some(&unit(EDQM, "15054000"))),
            Ok(())
        );
        // The MPD 400 examples: 21 Vial prescribed, "1" dispensed.
        let Err(UnitMismatch::NotComparable { message }) =
            table.compare(&vial, Some(&unit(UCUM, "1")))
        else {
            panic!("'1' against Vial must be refused");
        };
        assert!(
            message.contains("'1'") && message.contains("'15060000'"),
            "{message}"
        );
        assert!(message.contains("any countable item"), "{message}");
        // No conversion: mg is not g, and the same code in another system
        // is another unit.
        assert!(
            table
                .compare(&unit(UCUM, "g"), Some(&unit(UCUM, "mg")))
                .is_err()
        );
        assert!(table.compare(&vial, Some(&unit(SCT, "15060000"))).is_err());
        // A pessary is not a tablet, whatever the systems.
        assert!(
            table
                .compare(&unit(SCT, "733007009"), Some(&unit(EDQM, "15054000")))
                .is_err()
        );
        assert_eq!(table.compare(&vial, None), Err(UnitMismatch::Uncoded));
    }
}
