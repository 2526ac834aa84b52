//! Removing another member from a consumer group, which librdkafka cannot do (its LeaveGroup
//! only ever names the caller). Kafka's group coordinator removes any member a LeaveGroup (v3+,
//! KIP-345) lists, whoever sends it — only READ on the group is checked — and rebalances the
//! group at once; Kafka's Java admin client removes members the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::{FindCoordinatorRequest, GroupId, LeaveGroupRequest};
use kafka_protocol::protocol::StrBytes;

use super::connection::Connection;
use super::security::Security;

/// What became of a member to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The coordinator removed it; the group rebalances now.
    Removed,
    /// The group no longer had it (it left, or its session had expired).
    AlreadyGone,
}

/// Removes members from one group, over connections secured as the worker's clients are.
pub struct MemberRemover {
    /// `host:port` of each bootstrap broker.
    pub bootstrap: Vec<String>,
    pub security: Arc<Security>,
    pub group: String,
}

impl MemberRemover {
    /// [`remove_member`] off the async threads, trying for at most `patience`.
    pub async fn remove(
        self: &Arc<Self>,
        member_id: String,
        reason: String,
        patience: Duration,
    ) -> Result<Removal, String> {
        let this = self.clone();
        let deadline = Instant::now() + patience;
        tokio::task::spawn_blocking(move || {
            remove_member(
                &this.bootstrap,
                &this.security,
                &this.group,
                &member_id,
                &reason,
                deadline,
            )
        })
        .await
        .map_err(|e| format!("the removal failed: {e}"))?
    }
}

/// How long one step (connect, one request) may take.
const STEP: Duration = Duration::from_secs(2);
/// Between attempts while the coordinator moves or loads the group.
const RETRY: Duration = Duration::from_millis(200);

/// Removes `member_id` from `group`, asking one of `bootstrap` brokers where the group's
/// coordinator is. Retries while the coordinator is moving or loading the group, until
/// `deadline`; `Err` says why not.
pub fn remove_member(
    bootstrap: &[String],
    security: &Security,
    group: &str,
    member_id: &str,
    reason: &str,
    deadline: Instant,
) -> Result<Removal, String> {
    loop {
        let last = match attempt(bootstrap, security, group, member_id, reason) {
            Ok(Attempt::Done(removal)) => return Ok(removal),
            Ok(Attempt::Retry(why)) => why,
            Err(why) => why,
        };
        if Instant::now() + RETRY >= deadline {
            return Err(last);
        }
        std::thread::sleep(RETRY);
    }
}

enum Attempt {
    Done(Removal),
    /// The coordinator is moving or loading the group.
    Retry(String),
}

fn attempt(
    bootstrap: &[String],
    security: &Security,
    group: &str,
    member_id: &str,
    reason: &str,
) -> Result<Attempt, String> {
    let coordinator = match find_coordinator(bootstrap, security, group)? {
        Ok(coordinator) => coordinator,
        Err(retry) => return Ok(retry),
    };
    let mut connection = Connection::open(&coordinator, security, STEP)?;
    let version = connection.version::<LeaveGroupRequest>()?;
    if version < 3 {
        return Err(format!(
            "{coordinator}: LeaveGroup v{version} cannot name another member (v3+, Kafka 2.4)"
        ));
    }
    let member = MemberIdentity::default()
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_reason(Some(StrBytes::from_string(reason.to_string())));
    let request = LeaveGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_members(vec![member]);
    let response = connection.send(&request, version)?;
    if let Some(error) = response.error_code.err() {
        return match error {
            ResponseError::NotCoordinator
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::CoordinatorNotAvailable => Ok(Attempt::Retry(format!(
                "{coordinator}: LeaveGroup: {error:?}"
            ))),
            other => Err(format!(
                "{coordinator}: LeaveGroup for group {group}: {other:?}"
            )),
        };
    }
    let error = response.members.first().and_then(|m| m.error_code.err());
    match error {
        None => Ok(Attempt::Done(Removal::Removed)),
        Some(ResponseError::UnknownMemberId) => Ok(Attempt::Done(Removal::AlreadyGone)),
        Some(other) => Err(format!(
            "{coordinator}: LeaveGroup for member {member_id}: {other:?}"
        )),
    }
}

/// The `host:port` of `group`'s coordinator, or `Err(Attempt::Retry)` while there is none.
fn find_coordinator(
    bootstrap: &[String],
    security: &Security,
    group: &str,
) -> Result<Result<String, Attempt>, String> {
    let mut last = String::from("no bootstrap broker");
    for broker in bootstrap {
        let mut connection = match Connection::open(broker, security, STEP) {
            Ok(connection) => connection,
            Err(why) => {
                last = why;
                continue;
            }
        };
        let version = connection.version::<FindCoordinatorRequest>()?;
        let key = StrBytes::from_string(group.to_string());
        // v4 and later look up a list of keys.
        let request = if version >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![key])
        } else {
            FindCoordinatorRequest::default().with_key(key)
        };
        let response = connection.send(&request, version)?;
        let (error, host, port) = match response.coordinators.first() {
            Some(c) if version >= 4 => (c.error_code, c.host.to_string(), c.port),
            _ => (
                response.error_code,
                response.host.to_string(),
                response.port,
            ),
        };
        return match error.err() {
            None => Ok(Ok(format!("{host}:{port}"))),
            Some(
                e @ (ResponseError::CoordinatorNotAvailable
                | ResponseError::CoordinatorLoadInProgress
                | ResponseError::NotCoordinator),
            ) => Ok(Err(Attempt::Retry(format!(
                "{}: no coordinator for group {group} yet: {e:?}",
                connection.broker()
            )))),
            Some(e) => Err(format!(
                "{}: FindCoordinator for group {group}: {e:?}",
                connection.broker()
            )),
        };
    }
    Err(last)
}
