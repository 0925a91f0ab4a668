//! SeaORM entities mirroring the migrations. Conversions to domain types live
//! in the repositories, not here.

pub mod email_reservation;
pub mod session;
pub mod spent_refresh_token;
pub mod user;
