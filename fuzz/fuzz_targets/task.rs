//! Fuzzes the custom scenario's task-file parser (JSON and the YAML subset) and its prompt templates,
//! compiled natively from the guest's own source. The first byte picks the file type.

#![no_main]

#[path = "../../scenarios/custom/src/task.rs"]
#[allow(dead_code)]
mod task;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let name = if selector % 2 == 0 { "task.yaml" } else { "task.json" };
    if let Ok(parsed) = task::Task::parse(name, bytes) {
        let rendered: Result<String, ()> = parsed.template.render(|column| Ok(format!("<{column}>")));
        let rendered = rendered.expect("rendering with every column present succeeds");
        assert!(parsed.template.columns().all(|c| rendered.contains(&format!("<{c}>"))));
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        if let Ok(template) = task::Template::parse(text) {
            let _: Result<String, &str> = template.render(|_| Err("missing"));
        }
    }
});
