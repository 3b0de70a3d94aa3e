//! What every transport's connection does as an upgrade candidate: its
//! timers (`upgradeTimeout`, then engine.io's 100 ms check once probed) and
//! its reading of the probe dance (`2probe` → `3probe`, then `5`).

use crate::engine::Session;
use crate::protocol::{Packet, PacketData, PacketType};
use std::pin::Pin;
use std::time::Duration;

/// engine.io's upgrade check interval.
const UPGRADE_TICK: Duration = Duration::from_millis(100);

/// The upgrade timeout and, once probed, the 100 ms check; on the heap,
/// since most connections never upgrade and an idle connection's task
/// should stay small.
pub(crate) struct UpgradeTimers {
    timeout: Pin<Box<tokio::time::Sleep>>,
    tick: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl UpgradeTimers {
    /// Timers for a candidate that has `timeout` to complete its upgrade.
    pub(crate) fn new(timeout: Duration) -> Self {
        UpgradeTimers {
            timeout: Box::pin(tokio::time::sleep(timeout)),
            tick: None,
        }
    }
}

/// Which upgrade timer fired.
pub(crate) enum UpgradeTimer {
    /// `upgradeTimeout` passed: the upgrade failed.
    Expired,
    /// The 100 ms check: [`Session::upgrade_tick`].
    Tick,
}

/// Waits for the next upgrade timer; forever, when there is no upgrade.
pub(crate) async fn upgrade_timer(
    timers: &mut Option<UpgradeTimers>,
    probed: bool,
) -> UpgradeTimer {
    let Some(t) = timers else {
        return std::future::pending().await;
    };
    if probed && t.tick.is_none() {
        t.tick = Some(Box::pin(tokio::time::sleep(UPGRADE_TICK)));
    }
    let tick = async {
        match &mut t.tick {
            Some(s) => s.as_mut().await,
            None => std::future::pending().await,
        }
    };
    let ticked = tokio::select! {
        _ = t.timeout.as_mut() => false,
        _ = tick => true,
    };
    if !ticked {
        return UpgradeTimer::Expired;
    }
    if let Some(s) = &mut t.tick {
        s.as_mut().reset(tokio::time::Instant::now() + UPGRADE_TICK);
    }
    UpgradeTimer::Tick
}

/// What a candidate does with a packet from its client.
pub(crate) enum Step {
    /// `2probe`: write the `3probe` pong, then [`Session::upgrade_probed`].
    Pong,
    /// `5`: the upgrade is done; the connection is now the transport.
    Upgraded,
    /// The upgrade ended (the session refused it, or the client sent
    /// anything else, which aborts it): close the connection.
    End,
}

/// Reads one packet of the probe dance for candidate `id`, telling the
/// session what it means.
pub(crate) fn step(session: &Session, id: u64, packet: &Packet) -> Step {
    match (packet.kind, &packet.data) {
        (PacketType::Ping, PacketData::Text(t)) if t == "probe" => Step::Pong,
        (PacketType::Upgrade, _) if session.upgrade_complete(id) => Step::Upgraded,
        (PacketType::Upgrade, _) => Step::End,
        _ => {
            session.upgrade_abort(id);
            Step::End
        }
    }
}

/// The pong that answers a probe.
pub(crate) fn probe_pong() -> Packet {
    Packet::text(PacketType::Pong, "probe")
}
