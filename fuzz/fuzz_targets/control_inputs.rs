//! The control plane's text inputs, none of which may panic: the YAML configuration
//! loader (with its validation), keepalived.conf (lexer, blocks, conversion), an
//! ipvsadm command line (`rvsadm -R` reads them), and the control socket's request
//! decoder. The first byte picks the parser, the rest is its input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    match which % 4 {
        0 => {
            let _ = ctrlplane::config::Config::parse(&text, "fuzz.yaml");
        }
        1 => {
            let ifs = [("eth0".to_string(), "lan0".to_string())].into();
            let opts = ctrlplane::keepalived::Options { interfaces: &ifs, config_id: "lb1".into() };
            // Includes stay out: they would read the filesystem.
            if !text.contains("include") {
                let _ = ctrlplane::keepalived::convert_text(&text, "fuzz.conf", &opts);
            }
        }
        2 => {
            let _ = ctrlplane::ipvsadm::parse::parse_line(&text);
        }
        _ => {
            let _ = ctrlplane::ctl::decode_request(&text);
        }
    }
});
