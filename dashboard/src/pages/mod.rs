//! The pages, server-rendered HTML with inline SVG: [`layout`] (the shared frame and
//! formats), [`sessions`] (the list), [`session`] (one session), [`compare`] (Welch
//! comparisons) and [`actions`] (the forms that act on a running session).

pub mod actions;
pub mod compare;
pub mod layout;
pub mod session;
pub mod sessions;
