//! `research-agent`: a research goal in words taken to a statistically confirmed result.
//! `run` starts a session (embedded — all five services in this process on 127.0.0.1 with
//! real gRPC, state under `.research-agent/` — or against `--planner URL`) and follows it with
//! progress bars per candidate and seed, then prints the leaderboard; `serve`, `list`,
//! `status`, `report` and `resume` do what they say.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use ra_proto::common::v1 as common;
use ra_proto::evaluator::v1 as ev;
use ra_proto::planner::v1 as pb;
use ra_proto::registry::v1 as reg;

use crate::stack::{Stack, StackOptions};

mod args;
mod commands;
mod output;
mod progress;
mod upload;

pub use args::*;
pub use commands::run;
use output::*;
pub use output::{exit_code, state_name, status_json, strategy_name};
use progress::*;
