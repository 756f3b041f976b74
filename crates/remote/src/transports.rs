//! The transports a [`Source`] is reached by, and [`connector_for`], which
//! picks one by the source's kind: a new transport is a [`Connector`] (in
//! a file of its own, with a [`crate::Session`] if it does not speak the
//! agent's protocol) and one arm there.

use crate::session::{Connector, Session};
use crate::{ConnectOptions, Result, Source};
use async_trait::async_trait;
use std::sync::Arc;

/// How a link reaches `source`.
pub fn connector_for(source: &Source, options: &ConnectOptions) -> Arc<dyn Connector> {
    match source {
        Source::Local { .. } | Source::Ssh { .. } => Arc::new(SourceConnector {
            source: source.clone(),
            options: options.clone(),
        }),
    }
}

/// Runs the agent as a child process and speaks to it over its stdio:
/// the local agent, or one started through ssh (with the user's
/// configuration, re-read on every attempt).
pub struct SourceConnector {
    pub source: Source,
    pub options: ConnectOptions,
}

#[async_trait]
impl Connector for SourceConnector {
    async fn connect(&self) -> Result<Arc<dyn Session>> {
        let client = crate::source::connect_agent(&self.source, &self.options).await?;
        Ok(Arc::new(client))
    }

    fn describe(&self) -> String {
        self.source.describe()
    }
}
