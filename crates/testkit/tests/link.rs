//! The supervised link (`yonder_remote::Link`) against an agent served over
//! TCP through the fault proxy: liveness (stream end, heartbeats), calls in
//! flight failed when the link dies, reconnection with backoff, giving up,
//! `--no-reconnect`, `reconnect_now` and `close`. Each test asserts the
//! exact sequence of states the link went through.

// On the test kit's fixtures (the Unix agent, sshd, real mounts): Unix only.
#![cfg(unix)]

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use yonder_remote::{Link, LinkOptions, LinkState};
use yonder_testkit::agent::{TcpAgent, TcpConnector};
use yonder_testkit::proxy::FaultProxy;

struct Setup {
    _dir: tempfile::TempDir,
    agent: TcpAgent,
    proxy: FaultProxy,
    link: Link,
    states: broadcast::Receiver<LinkState>,
}

fn fast(options: LinkOptions) -> LinkOptions {
    LinkOptions {
        heartbeat: Duration::from_millis(300),
        heartbeat_misses: 3,
        backoff_initial: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        connect_timeout: Duration::from_secs(2),
        ..options
    }
}

async fn setup(options: LinkOptions) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), b"hello").unwrap();
    let agent = TcpAgent::start(dir.path()).await.unwrap();
    let proxy = FaultProxy::start(agent.addr()).await.unwrap();
    let connector = Arc::new(TcpConnector { addr: proxy.addr() });
    let link = Link::start(connector, options).await.unwrap();
    let states = link.transitions();
    Setup {
        _dir: dir,
        agent,
        proxy,
        link,
        states,
    }
}

/// The states received so far, by name, consecutive repeats (reconnection
/// attempts) folded into one.
fn names(states: &mut broadcast::Receiver<LinkState>) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    while let Ok(state) = states.try_recv() {
        if out.last() != Some(&state.name()) {
            out.push(state.name());
        }
    }
    out
}

/// Waits (up to `limit`) until the link's state is named `name`.
async fn wait_state(link: &Link, name: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut watch = link.watch();
    tokio::time::timeout(limit, watch.wait_for(|s| s.state.name() == name))
        .await
        .unwrap_or_else(|_| panic!("no {name} within {limit:?}: {}", link.state()))
        .unwrap();
    started.elapsed()
}

#[tokio::test]
async fn a_black_holed_link_is_declared_dead_within_the_heartbeat_window_and_comes_back() {
    let mut s = setup(fast(LinkOptions::default())).await;
    let (generation, remote) = s.link.current();
    remote.ping().await.unwrap();
    // Let a few heartbeats through first: the link is quiet but alive.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(s.link.state(), LinkState::Connected);

    s.proxy.blackhole();
    let cut = Instant::now();
    // A call made on the dead link fails once the link is declared dead,
    // not never.
    let stuck = tokio::spawn({
        let remote = remote.clone();
        async move { remote.lstat(b"file").await }
    });
    let detected = wait_state(&s.link, "reconnecting", Duration::from_secs(5)).await;
    let window = s.link.options().dead_after() + Duration::from_secs(1);
    assert!(detected <= window, "dead after {detected:?}, allowed {window:?}");
    let failed = tokio::time::timeout(Duration::from_secs(1), stuck)
        .await
        .expect("the call in flight failed promptly")
        .unwrap();
    let err = failed.expect_err("the call on the dead link fails");
    assert!(err.is_connection_lost(), "{err:?}");
    assert!(err.outcome_unknown(), "it was sent: {err:?}");
    let later = remote
        .lstat(b"file")
        .await
        .expect_err("the old client is shut down");
    assert!(
        later.is_connection_lost() && !later.outcome_unknown(),
        "{later:?}"
    );

    // Attempts while black-holed do not get through.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(matches!(s.link.state(), LinkState::Reconnecting { .. }));
    s.proxy.restore();
    wait_state(&s.link, "connected", Duration::from_secs(5)).await;
    let (new_generation, new_remote) = s.link.current();
    assert!(new_generation > generation);
    assert_eq!(new_remote.lstat(b"file").await.unwrap().size, 5);
    eprintln!("declared dead {:?} after the cut", cut.elapsed().min(detected));
    assert_eq!(names(&mut s.states), ["reconnecting", "connected"]);
}

#[tokio::test]
async fn a_dropped_connection_is_noticed_at_once() {
    let mut s = setup(LinkOptions {
        heartbeat: Duration::from_secs(30),
        ..fast(LinkOptions::default())
    })
    .await;
    s.proxy.drop_all();
    let detected = wait_state(&s.link, "reconnecting", Duration::from_secs(5)).await;
    assert!(
        detected < Duration::from_secs(1),
        "{detected:?}: the heartbeat is 30 s"
    );
    wait_state(&s.link, "connected", Duration::from_secs(5)).await;
    s.link.current().1.ping().await.unwrap();
    assert_eq!(names(&mut s.states), ["reconnecting", "connected"]);
}

#[tokio::test]
async fn reconnection_backs_off_and_gives_up_after_the_reconnect_timeout() {
    let mut s = setup(LinkOptions {
        reconnect_timeout: Some(Duration::from_millis(1500)),
        ..fast(LinkOptions::default())
    })
    .await;
    // The agent becomes unreachable: every attempt is refused.
    s.proxy.retarget("127.0.0.1:1".parse().unwrap());
    s.proxy.drop_all();
    let started = Instant::now();
    wait_state(&s.link, "disconnected", Duration::from_secs(5)).await;
    let gave_up = started.elapsed();
    assert!(
        gave_up >= Duration::from_millis(1400) && gave_up < Duration::from_secs(3),
        "{gave_up:?}"
    );
    let LinkState::Disconnected { reason } = s.link.state() else {
        unreachable!()
    };
    assert!(reason.contains("gave up"), "{reason}");
    // Attempts at 0, 0.1, 0.3, 0.7, 1.1 s (the wait doubles from 100 ms to
    // at most 400 ms), and one as the timeout ends.
    let mut attempts = 0;
    let mut seen = Vec::new();
    while let Ok(state) = s.states.try_recv() {
        if let LinkState::Reconnecting { attempt, .. } = state {
            attempts = attempt;
        }
        seen.push(state.name());
    }
    assert!((4..=7).contains(&attempts), "{attempts} attempts: {seen:?}");
    seen.dedup();
    assert_eq!(seen, ["reconnecting", "disconnected"]);

    // A request revives it once the agent is back.
    s.proxy.retarget(s.agent.addr());
    s.link.reconnect_now();
    wait_state(&s.link, "connected", Duration::from_secs(5)).await;
    assert_eq!(names(&mut s.states), ["reconnecting", "connected"]);
}

#[tokio::test]
async fn without_reconnection_the_link_stays_disconnected_and_calls_fail_fast() {
    let mut s = setup(LinkOptions {
        reconnect: false,
        ..fast(LinkOptions::default())
    })
    .await;
    let remote = s.link.current().1;
    s.proxy.drop_all();
    wait_state(&s.link, "disconnected", Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.link.state().name(), "disconnected");
    let started = Instant::now();
    let err = remote.lstat(b"file").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "at once, not waiting");
    assert!(err.is_connection_lost());
    assert_eq!(names(&mut s.states), ["disconnected"]);
    assert_eq!(s.proxy.accepted(), 1, "no reconnection attempt");
}

#[tokio::test]
async fn reconnect_now_replaces_a_live_connection_and_close_ends_the_link() {
    let mut s = setup(fast(LinkOptions::default())).await;
    let (first, _) = s.link.current();
    s.link.reconnect_now();
    let mut watch = s.link.watch();
    tokio::time::timeout(
        Duration::from_secs(5),
        watch.wait_for(|st| st.generation > first && st.state == LinkState::Connected),
    )
    .await
    .unwrap()
    .unwrap();
    s.link.current().1.ping().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.agent.sessions() != 1 {
        assert!(Instant::now() < deadline, "the old session did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.link.close();
    wait_state(&s.link, "disconnected", Duration::from_secs(5)).await;
    assert!(s.link.current().1.ping().await.is_err());
    assert_eq!(
        names(&mut s.states),
        ["reconnecting", "connected", "disconnected"]
    );
}

/// The next change of `feed` that is not a plain list of paths.
async fn next_news(feed: &mut yonder_remote::ChangeFeed) -> yonder_remote::RemoteChange {
    loop {
        let change = tokio::time::timeout(Duration::from_secs(5), feed.recv())
            .await
            .expect("news within 5 s")
            .expect("the feed goes on");
        if !matches!(change, yonder_remote::RemoteChange::Changed(_)) {
            return change;
        }
    }
}

/// Until a change names `path`.
async fn until_changed(feed: &mut yonder_remote::ChangeFeed, path: &[u8]) {
    loop {
        let change = tokio::time::timeout(Duration::from_secs(5), feed.recv())
            .await
            .expect("a change within 5 s")
            .expect("the feed goes on");
        if let yonder_remote::RemoteChange::Changed(changes) = change {
            if changes.iter().any(|c| &c.path[..] == path) {
                return;
            }
        }
    }
}

#[tokio::test]
async fn pushed_changes_keep_coming_across_a_reconnection_which_says_anything_may_have_changed() {
    use yonder_remote::RemoteChange;
    let s = setup(fast(LinkOptions::default())).await;
    let mut feed = s.link.changes();
    assert!(matches!(
        next_news(&mut feed).await,
        RemoteChange::Watching { active: true, .. }
    ));
    let (_, remote) = s.link.current();
    remote.read_dir_all(b"").await.unwrap();
    std::fs::write(s._dir.path().join("one"), b"1").unwrap();
    until_changed(&mut feed, b"one").await;

    s.proxy.drop_all();
    wait_state(&s.link, "reconnecting", Duration::from_secs(5)).await;
    wait_state(&s.link, "connected", Duration::from_secs(5)).await;
    assert!(
        matches!(next_news(&mut feed).await, RemoteChange::Unknown { .. }),
        "changes made while the link was down were not seen"
    );
    assert!(matches!(
        next_news(&mut feed).await,
        RemoteChange::Watching { active: true, .. }
    ));
    // The new agent watches the root from the start.
    std::fs::write(s._dir.path().join("two"), b"2").unwrap();
    until_changed(&mut feed, b"two").await;
    let _ = &s.agent;
}
