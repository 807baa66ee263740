//! Arguments by name and repeated value flags, as a plugin command sees them.

use std::io::Write;

use vessel_plugin_api::{Arg, Command, Flag, Plugin};
use vessel_plugin_test as testing;

/// `greet WHO [GREETING] [EXTRA...] [--tag T]...`: prints each slot by name.
fn build() -> Plugin {
    Plugin::new("example.com/slots").command(
        Command::new("greet")
            .arg(Arg::new("who").required())
            .arg(Arg::new("greeting"))
            .arg(Arg::new("extra").multiple())
            .flag(Flag::value("tag"))
            .flag(Flag::switch("loud")),
        |inv| {
            writeln!(
                inv.stdout(),
                "who={:?} greeting={:?} extra={:?} tags={:?} last={:?} loud={}",
                inv.arg("who"),
                inv.arg("greeting"),
                inv.arg_values("extra"),
                inv.flag_values("tag"),
                inv.flag("tag"),
                inv.is_set("loud"),
            )?;
            Ok(0)
        },
    )
}

fn run(args: &[&str], flags: &[(&str, Option<&str>)]) -> String {
    testing::run_command(&build(), "greet", args, flags)
        .unwrap()
        .stdout
}

#[test]
fn an_absent_optional_argument_is_none_and_shifts_nothing() {
    assert_eq!(
        run(&["ann"], &[]),
        "who=Some(\"ann\") greeting=None extra=[] tags=[] last=None loud=false\n"
    );
    assert_eq!(
        run(&["ann", "hi"], &[]),
        "who=Some(\"ann\") greeting=Some(\"hi\") extra=[] tags=[] last=None loud=false\n"
    );
}

#[test]
fn a_multi_value_argument_takes_the_rest() {
    assert_eq!(
        run(&["ann", "hi", "x", "y"], &[("loud", None)]),
        "who=Some(\"ann\") greeting=Some(\"hi\") extra=[\"x\", \"y\"] tags=[] last=None loud=true\n"
    );
}

#[test]
fn a_repeated_value_flag_gives_every_value_in_order() {
    assert_eq!(
        run(&["ann"], &[("tag", Some("a")), ("tag", Some("b"))]),
        "who=Some(\"ann\") greeting=None extra=[] tags=[\"a\", \"b\"] last=Some(\"b\") loud=false\n"
    );
}

#[test]
fn an_undeclared_argument_name_is_none() {
    let p = Plugin::new("example.com/slots").command(Command::new("c"), |inv| {
        Ok(i32::from(
            inv.arg("who").is_none() && inv.arg_values("who").is_empty(),
        ))
    });
    assert_eq!(testing::run_command(&p, "c", &[], &[]).unwrap().status, 1);
}
