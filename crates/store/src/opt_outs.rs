//! Patients' opt-outs of cross-border exchange (EHDS: a patient may refuse
//! that their data cross the border, per service and per requesting
//! country). Checked before any cross-border answer; effective at once for
//! every gateway replica sharing the database.

use time::OffsetDateTime;

use crate::backend::{Backend, Store, from_micros, to_micros};
use crate::error::StoreError;

/// Every requesting country.
pub const ANY_COUNTRY: &str = "*";

/// One opt-out in force, as the patient's portal shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOut {
    /// The service opted out of (`patient-summary`, `eprescription`).
    pub service: String,
    /// The requesting country it is towards; `None`: every country.
    pub country: Option<String>,
    /// Since when (the first time it was set).
    pub since: OffsetDateTime,
}

impl Store {
    /// Records that `patient_identifier` (`system|value`) opts out of
    /// `service` towards `country` (an ISO code, or `None` for every
    /// country). Setting it again keeps the first time.
    pub async fn set_opt_out(
        &self,
        patient_identifier: &str,
        service: &str,
        country: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let at_us = to_micros(at)?;
        let country = country.unwrap_or(ANY_COUNTRY);
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO cross_border_opt_outs (patient_identifier, service, country, opted_out_at_us) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (patient_identifier, service, country) DO NOTHING",
            )
            .bind(patient_identifier)
            .bind(service)
            .bind(country)
            .bind(at_us)
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Withdraws that opt-out; true when one was in force.
    pub async fn withdraw_opt_out(
        &self,
        patient_identifier: &str,
        service: &str,
        country: Option<&str>,
    ) -> Result<bool, StoreError> {
        let country = country.unwrap_or(ANY_COUNTRY);
        let deleted = on_pool!(self, |pool| {
            sqlx::query(
                "DELETE FROM cross_border_opt_outs \
                 WHERE patient_identifier = $1 AND service = $2 AND country = $3",
            )
            .bind(patient_identifier)
            .bind(service)
            .bind(country)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(deleted > 0)
    }

    /// Whether the patient opted out of `service` towards `requesting_country`
    /// (an opt-out for every country counts).
    pub async fn is_opted_out(
        &self,
        patient_identifier: &str,
        service: &str,
        requesting_country: &str,
    ) -> Result<bool, StoreError> {
        let found: Option<i64> = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT opted_out_at_us FROM cross_border_opt_outs \
                 WHERE patient_identifier = $1 AND service = $2 AND (country = $3 OR country = '*') \
                 LIMIT 1",
            )
            .bind(patient_identifier)
            .bind(service)
            .bind(requesting_country)
            .fetch_optional(pool)
            .await
        })?;
        Ok(found.is_some())
    }

    /// Every opt-out of `patient_identifier` in force, by service, the
    /// opt-out for every country before those towards one country.
    pub async fn opt_outs_of(&self, patient_identifier: &str) -> Result<Vec<OptOut>, StoreError> {
        let rows: Vec<(String, String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT service, country, opted_out_at_us FROM cross_border_opt_outs \
                 WHERE patient_identifier = $1 ORDER BY service, country <> '*', country",
            )
            .bind(patient_identifier)
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter()
            .map(|(service, country, at_us)| {
                Ok(OptOut {
                    service,
                    country: (country != ANY_COUNTRY).then_some(country),
                    since: from_micros(at_us)?,
                })
            })
            .collect()
    }
}
