//! Cutover through a user hook: `sh -c` with the new primary in its
//! environment; failures and timeouts stop the cutover with the hook's stderr.

use instarec::config::{CutoverMethods, CutoverSection, HookSection, HumanDuration};
use instarec::cutover::{self, CutoverTarget};
use std::time::{Duration, Instant};

fn section(methods: &[&str], command: &str, timeout: Duration) -> CutoverSection {
    CutoverSection {
        method: CutoverMethods::Many(methods.iter().map(|m| m.to_string()).collect()),
        listen: None,
        proxy_control: None,
        pgbouncer: None,
        haproxy: None,
        hook: Some(HookSection {
            command: command.to_string(),
            timeout: HumanDuration(timeout),
        }),
    }
}

fn target() -> CutoverTarget {
    CutoverTarget {
        host: "db2.internal".into(),
        port: 6543,
        epoch: 7,
    }
}

#[tokio::test]
async fn the_hook_gets_the_new_primary_in_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env.txt");
    let command = format!(
        "echo \"$INSTAREC_NEW_PRIMARY_HOST $INSTAREC_NEW_PRIMARY_PORT $INSTAREC_EPOCH\" > '{}'; echo dns updated",
        out.display()
    );
    let steps = cutover::run(
        &section(&["hook"], &command, Duration::from_secs(10)),
        &target(),
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "db2.internal 6543 7\n"
    );
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].method, "hook");
    assert!(
        steps[0].detail.ends_with("dns updated"),
        "{}",
        steps[0].detail
    );
}

#[tokio::test]
async fn a_failing_hook_fails_the_cutover_with_its_stderr_tail() {
    let command = "for i in $(seq 1 500); do echo \"noise $i\" >&2; done; echo 'dns api said 403' >&2; exit 3";
    let err = cutover::run(
        &section(&["hook"], command, Duration::from_secs(10)),
        &target(),
    )
    .await
    .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("exit status: 3"), "{text}");
    assert!(text.contains("dns api said 403"), "{text}");
    assert!(
        !text.contains("noise 1\n"),
        "only the tail is quoted: {text}"
    );
}

#[tokio::test]
async fn a_hook_that_hangs_is_killed_at_the_timeout_with_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("sleep.pid");
    // The shell's child keeps the pipes open: it must be killed too.
    let command = format!(
        "echo starting >&2; sleep 60 & echo $! > '{}'; wait",
        pid_file.display()
    );
    let started = Instant::now();
    let err = cutover::run(
        &section(&["hook"], &command, Duration::from_millis(500)),
        &target(),
    )
    .await
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let text = format!("{err:#}");
    assert!(
        text.contains("was killed") && text.contains("starting"),
        "{text}"
    );
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    // SIGKILL is delivered asynchronously; on a loaded machine the process
    // may take a moment to die after the hook call returned.
    let alive = || {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|s| s != 'Z' && s != 'X')
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(), "the hook's sleep {pid} survived the timeout");
}

#[tokio::test]
async fn methods_run_in_order_and_stop_at_the_first_failure() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let command = format!("touch '{}'", marker.display());
    // haproxy has no section: rejected before the hook runs.
    let err = cutover::run(
        &section(&["hook", "haproxy"], &command, Duration::from_secs(5)),
        &target(),
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("[cutover.haproxy]"), "{err:#}");
    assert!(
        !marker.exists(),
        "nothing may run when the config is incomplete"
    );

    let err = cutover::run(
        &section(&["hook", "dns"], &command, Duration::from_secs(5)),
        &target(),
    )
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("unknown [cutover] method \"dns\""),
        "{err:#}"
    );

    let failing = section(&["hook", "hook"], "exit 1", Duration::from_secs(5));
    assert!(cutover::run(&failing, &target()).await.is_err());
    // proxy without a control port is satisfied by the epoch in the archive.
    let mut both = section(&["proxy", "hook"], &command, Duration::from_secs(5));
    both.proxy_control = None;
    let steps = cutover::run(&both, &target()).await.unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(names, ["proxy", "hook"]);
    assert!(
        steps[0].detail.contains("from the archive"),
        "{}",
        steps[0].detail
    );
    assert!(marker.exists());
}
