//! sysctune: a Linux sysctl tuning advisor and applier.
//!
//! Data flows one way: [`host`] reads the machine into [`host::Facts`] (and, for
//! [`planner`], the sysctl.d files: [`host::Observed`]); [`rules`] turn
//! facts and a [`profile::Profile`] into recommendations; [`plan`] resolves them into a
//! [`plan::Plan`]; `report` renders it and `apply` carries it out.

#![forbid(unsafe_code)]

pub mod app;
pub mod apply;
pub mod cli;
pub mod crash;
pub mod doctor;
pub mod dropin;
pub mod error;
pub mod escape;
pub mod exit;
pub mod fleet;
pub mod guard;
pub mod hint;
pub mod host;
pub mod keys;
pub mod plan;
pub mod planner;
pub mod profile;
pub mod recommend;
pub mod report;
pub mod rules;
pub mod shell;
pub mod snapshot;
pub mod state;
pub mod status;
pub mod sysctl_d;
pub mod units;
