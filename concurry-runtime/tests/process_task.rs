//! Free functions (`#[task]`'s runtime side) in a child process, run by name by `TaskHost`.

use std::time::Duration;

use concurry::{Error, ProcessWorker, RemoteTask, TaskHost};

const HANG: Duration = Duration::from_secs(30);

struct Square;

impl RemoteTask for Square {
    const NAME: &'static str = "process_task::Square";
    type Args = (u64,);
    type Output = u64;
    fn run((x,): (u64,)) -> u64 {
        x * x
    }
}

struct Greet;

impl RemoteTask for Greet {
    const NAME: &'static str = "process_task::Greet";
    type Args = (String, Option<String>);
    type Output = Result<String, String>;
    fn run((name, title): (String, Option<String>)) -> Result<String, String> {
        if name.is_empty() {
            return Err("no name".into());
        }
        Ok(match title {
            Some(t) => format!("hello {t} {name} from {}", std::process::id()),
            None => format!("hello {name} from {}", std::process::id()),
        })
    }
}

struct Crash;

impl RemoteTask for Crash {
    const NAME: &'static str = "process_task::Crash";
    type Args = (bool,);
    type Output = ();
    fn run((abort,): (bool,)) {
        if abort {
            std::process::abort();
        }
        panic!("task panicked");
    }
}

struct NotRegistered;

impl RemoteTask for NotRegistered {
    const NAME: &'static str = "process_task::NotRegistered";
    type Args = ();
    type Output = ();
    fn run((): ()) {}
}

concurry::register_remote_task!(Square);
concurry::register_remote_task!(Greet);
concurry::register_remote_task!(Crash);

#[test]
fn tasks_run_by_name_in_a_child() {
    let host = ProcessWorker::<TaskHost>::spawn(()).unwrap();
    let squares: Vec<_> = (0..100u64).map(|x| host.run_task::<Square>((x,))).collect();
    for (x, p) in squares.into_iter().enumerate() {
        assert_eq!(p.result_timeout(HANG).unwrap(), (x * x) as u64);
    }
    let hello = host
        .run_task::<Greet>(("Ada".into(), Some("Dr".into())))
        .result_timeout(HANG)
        .unwrap()
        .unwrap();
    assert!(hello.starts_with("hello Dr Ada from "), "{hello}");
    assert!(!hello.ends_with(&format!(" {}", std::process::id())));
    assert_eq!(
        host.run_task::<Greet>((String::new(), None))
            .result_timeout(HANG)
            .unwrap(),
        Err("no name".to_string())
    );
    host.stop().unwrap();
}

#[test]
fn task_failures_are_typed() {
    let host = ProcessWorker::<TaskHost>::spawn(()).unwrap();
    match host.run_task::<Crash>((false,)).result_timeout(HANG) {
        Err(Error::Panicked { message }) => assert_eq!(message, "task panicked"),
        other => panic!("{other:?}"),
    }
    match host.run_task::<Crash>((true,)).result_timeout(HANG) {
        Err(Error::WorkerLost { message }) => assert!(message.contains("SIGABRT"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        host.run_task::<Square>((3,)).result_timeout(HANG).unwrap(),
        9
    );
    match host.run_task::<NotRegistered>(()).result_timeout(HANG) {
        Err(Error::Config(e)) => assert!(e.to_string().contains("#[task(remote)]"), "{e}"),
        other => panic!("{other:?}"),
    }
    host.stop().unwrap();
}
