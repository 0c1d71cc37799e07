//! The runtime settings format (`loadconfig`) on any text: never a panic, and what it accepts
//! survives a saveconfig / loadconfig round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_settings::Settings;

fuzz_target!(|text: &str| {
    if let Ok(settings) = Settings::from_toml(text) {
        let saved = settings.to_toml();
        let loaded = Settings::from_toml(&saved).expect("saved settings load");
        assert_eq!(loaded, settings, "saveconfig/loadconfig round trip");
    }
});
