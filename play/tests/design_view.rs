//! The design view without a window: `egui_kittest` drives `DesignView::ui` on a bare egui
//! context while the view's worker threads generate sectors. What designers rely on: the map
//! shows exactly what the sim's generator makes for the configuration on screen, sliders move
//! within what validation accepts and the map follows them, presets and A/B comparison.

use std::time::Duration;

use egui::accesskit::Role;
use egui::{Pos2, vec2};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use astroboids_designer::{PRESETS, RegionStats, RegionSummary};
use astroboids_play::design::DesignView;
use astroboids_play::design::sliders::slider_specs;
use astroboids_sim::config::{EMBEDDED_CONFIG_TOML, UniverseConfig, generation_ranges};
use astroboids_sim::sectors::SectorGenerator;
use astroboids_sim::space::SectorCoord;

/// Pixels per point the reports are asked for (positions scale by it).
const PPP: f32 = 2.0;

fn harness(view: DesignView) -> Harness<'static, DesignView> {
    Harness::builder()
        .with_size(vec2(1280.0, 800.0))
        .build_ui_state(|ui, view: &mut DesignView| view.ui(ui, 0.0), view)
}

fn default_view() -> Harness<'static, DesignView> {
    harness(DesignView::new(None, "default").unwrap())
}

/// Runs frames until every visible sector is generated and drawn. The worker threads need
/// time; the short sleeps are waiting, not measuring.
fn settle(harness: &mut Harness<'_, DesignView>) {
    for _ in 0..6_000 {
        // Runs until nothing more is asked for now (sectors arriving ask again later).
        let _ = harness.run_ok();
        if harness.state_mut().settled() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("never settled: {:?}", harness.state().progress());
}

/// (x, y, asteroids, nebulae, hazards) of every "sector:" line.
fn reported_sectors(report: &[String]) -> Vec<(i32, i32, usize, usize, usize)> {
    report
        .iter()
        .filter_map(|line| line.strip_prefix("sector: "))
        .filter(|rest| !rest.contains("not"))
        .map(|rest| {
            let words: Vec<&str> = rest.split(' ').collect();
            let (x, y) = words[0].split_once(',').unwrap();
            (
                x.parse().unwrap(),
                y.parse().unwrap(),
                words[2].parse().unwrap(),
                words[4].parse().unwrap(),
                words[6].parse().unwrap(),
            )
        })
        .collect()
}

/// (kind, x, y, radius) of every "drawn:" line.
fn reported_items(report: &[String]) -> Vec<(String, f32, f32, f32)> {
    report
        .iter()
        .filter_map(|line| line.strip_prefix("drawn: "))
        .map(|rest| {
            let w: Vec<&str> = rest.split(' ').collect();
            assert_eq!((w[1], w[4]), ("at", "radius"), "{rest}");
            let number = |i: usize| w[i].parse::<f32>().unwrap();
            (w[0].to_string(), number(2), number(3), number(5))
        })
        .collect()
}

/// Checks the report against the generator for the view's configuration: every visible
/// sector's counts, and every feature drawn where the camera puts it (in pixels).
fn assert_report_matches_generator(view: &DesignView) {
    let report = view.report(PPP);
    let generator = SectorGenerator::new(view.config(), view.seed());
    let sectors = reported_sectors(&report);
    assert!(sectors.len() >= 4, "{report:#?}");
    let rect = view.map_rect().unwrap();
    let camera = view.camera;
    let size = view.config().simulation.sector_size;
    let ppm = camera.points_per_metre;
    let mut expected = Vec::new();
    for &(x, y, asteroids, nebulae, hazards) in &sectors {
        let contents = generator.generate(SectorCoord::new(x, y));
        assert_eq!(
            (asteroids, nebulae, hazards),
            (
                contents.asteroids.len(),
                contents.nebulae.len(),
                contents.hazards.len()
            ),
            "sector {x},{y}"
        );
        let features = contents
            .asteroids
            .iter()
            .map(|a| ("asteroid", a.local, a.radius))
            .chain(
                contents
                    .nebulae
                    .iter()
                    .map(|n| ("nebula", n.local, n.radius)),
            )
            .chain(
                contents
                    .hazards
                    .iter()
                    .map(|h| ("hazard", h.local, h.radius)),
            );
        for (kind, local, radius) in features {
            let at = camera.to_screen(rect, (x, y), (local.x, local.y), size);
            // Asteroids are drawn at least a point across, to stay visible.
            let drawn_radius = if kind == "asteroid" {
                (radius * ppm).max(0.5)
            } else {
                radius * ppm
            };
            if rect.expand(drawn_radius).contains(at) {
                expected.push((kind.to_string(), at, drawn_radius));
            }
        }
    }
    let drawn = reported_items(&report);
    assert_eq!(drawn.len(), expected.len(), "every visible feature, once");
    for (kind, at, radius) in &expected {
        let pixels = Pos2::new(at.x * PPP, at.y * PPP);
        assert!(
            drawn.iter().any(|(k, x, y, r)| k == kind
                && (x - pixels.x).abs() <= 0.06
                && (y - pixels.y).abs() <= 0.06
                && (r - radius * PPP).abs() <= 0.01),
            "{kind} at {pixels:?} radius {} not drawn",
            radius * PPP
        );
    }
}

fn total_asteroids(report: &[String]) -> usize {
    reported_sectors(report).iter().map(|s| s.2).sum()
}

fn reported_value(report: &[String], field: &str) -> String {
    let prefix = format!("{field} = ");
    report
        .iter()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{field} not reported"))
        .to_string()
}

#[test]
fn the_default_universe_shows_exactly_what_the_generator_makes() {
    let mut harness = default_view();
    // Close enough that asteroids are several pixels wide.
    harness.state_mut().camera.points_per_metre = 0.4;
    settle(&mut harness);
    let view = harness.state();
    let report = view.report(PPP);
    assert_eq!(report[0], "design: default seed 1");
    assert!(view.drawn().unwrap().detail);
    assert_report_matches_generator(view);
    assert!(reported_items(&report).iter().any(|i| i.0 == "asteroid"));
    let defaults = UniverseConfig::default();
    assert_eq!(reported_value(&report, "generation.belt_frequency"), "0.09");
    assert_eq!(
        reported_value(&report, "generation.max_asteroids_per_sector"),
        defaults.generation.max_asteroids_per_sector.to_string()
    );
    assert_eq!(
        reported_value(&report, "generation.asteroid_radius_min"),
        "4"
    );
    let (done, total) = view.progress();
    assert_eq!(done, total);
}

#[test]
fn moving_a_slider_regenerates_the_map_for_the_new_configuration() {
    let mut harness = default_view();
    settle(&mut harness);
    let before = harness.state().report(PPP);
    // The real slider, through its accessibility action (what a screen reader does).
    harness
        .get_by_role_and_label(Role::Slider, "max_asteroids_per_sector")
        .set_value_accesskit(96.0);
    harness.run();
    assert_eq!(
        harness.state().config().generation.max_asteroids_per_sector,
        96
    );
    settle(&mut harness);
    let after = harness.state().report(PPP);
    assert_eq!(
        reported_value(&after, "generation.max_asteroids_per_sector"),
        "96"
    );
    assert!(
        total_asteroids(&after) > total_asteroids(&before),
        "four times the cap, more asteroids: {} then {}",
        total_asteroids(&before),
        total_asteroids(&after)
    );
    assert_report_matches_generator(harness.state());

    // Nebulae everywhere the nebula field is above -1 (everywhere, here).
    harness
        .get_by_role_and_label(Role::Slider, "nebula_threshold")
        .set_value_accesskit(-1.0);
    harness.run();
    settle(&mut harness);
    let report = harness.state().report(PPP);
    assert!(
        reported_sectors(&report).iter().all(|s| s.3 >= 1),
        "{report:#?}"
    );
    assert_report_matches_generator(harness.state());
}

#[test]
fn quick_slider_moves_end_on_the_last_configuration() {
    let mut harness = default_view();
    harness.run();
    // Superseded configurations while their sectors are being generated.
    for chance in [0.2, 0.4, 0.6, 0.8, 1.0] {
        harness
            .state_mut()
            .set_field("generation.hazard_chance", chance)
            .unwrap();
        harness.run();
    }
    settle(&mut harness);
    let report = harness.state().report(PPP);
    assert!(
        reported_sectors(&report).iter().all(|s| s.4 == 1),
        "{report:#?}"
    );
    assert_report_matches_generator(harness.state());
}

#[test]
fn no_slider_position_is_refused_by_validation() {
    let mut harness = default_view();
    harness.run();
    let start = harness.state().config().clone();
    let ranges = generation_ranges(start.simulation.sector_size);
    for spec in slider_specs(&start) {
        let validated = ranges.iter().find(|r| r.field == spec.field).unwrap();
        assert!(
            validated.min <= *spec.range.start() && *spec.range.end() <= validated.max,
            "{}: {:?} outside validation's {}..={}",
            spec.field,
            spec.range,
            validated.min,
            validated.max
        );
        // Far past both ends through the real widget: it stops at the ends, which are valid.
        for (push, end) in [(-1e12, spec.range.start()), (1e12, spec.range.end())] {
            harness
                .get_by_role_and_label(Role::Slider, spec.name())
                .set_value_accesskit(push);
            harness.run();
            let config = harness.state().config();
            config.validate("slider").unwrap();
            let now = config.generation.get(spec.field).unwrap();
            // The other end may have moved with a partner field; this end is where the
            // range (recomputed for the current configuration) says.
            let current = slider_specs(config)
                .into_iter()
                .find(|s| s.field == spec.field)
                .unwrap();
            let expected = if push < 0.0 {
                *current.range.start()
            } else {
                *current.range.end()
            };
            assert_eq!(now, expected, "{} pushed towards {end}", spec.field);
        }
    }
    // Every field at both ends of its range, from every starting configuration.
    for preset in PRESETS {
        let mut view = DesignView::new(Some(preset.toml), preset.name).unwrap();
        for field in ranges.iter().map(|r| r.field) {
            for end in [0, 1] {
                let spec = slider_specs(view.config())
                    .into_iter()
                    .find(|s| s.field == field)
                    .unwrap();
                let value = [*spec.range.start(), *spec.range.end()][end];
                view.set_field(field, value)
                    .unwrap_or_else(|e| panic!("{} {field} = {value}: {e}", preset.name));
                view.config().validate(preset.name).unwrap();
            }
        }
    }
}

#[test]
fn choosing_a_preset_takes_its_values() {
    let mut harness = default_view();
    harness.run();
    harness
        .get_by_role_and_label(Role::ComboBox, "Preset")
        .click();
    harness.run();
    harness.get_by_label("preset:dense-belt").click();
    harness.run();
    let preset = PRESETS.iter().find(|p| p.name == "dense-belt").unwrap();
    let expected = UniverseConfig::from_toml_str(preset.toml, preset.name).unwrap();
    assert_eq!(*harness.state().config(), expected);
    settle(&mut harness);
    let report = harness.state().report(PPP);
    assert_eq!(report[0], "design: preset:dense-belt seed 1");
    assert_eq!(
        reported_value(&report, "generation.belt_threshold"),
        expected.generation.belt_threshold.to_string()
    );
    assert_report_matches_generator(harness.state());
    assert!(harness.state_mut().choose("preset:nope").is_err());
}

#[test]
fn a_b_comparison_shows_both_maps_and_the_designer_tools_compare_table() {
    let mut harness = default_view();
    settle(&mut harness);
    harness.get_by_label("Keep as A and compare").click();
    harness.run();
    assert!(harness.state().comparing());
    harness
        .state_mut()
        .set_field("generation.hazard_chance", 0.5)
        .unwrap();
    settle(&mut harness);
    // Statistics are taken once the region on screen is generated and the map at rest.
    harness.run();
    let view = harness.state();
    assert_eq!(view.kept_config(), Some(&UniverseConfig::default()));
    let (a_map, b_map) = (view.drawn_kept().unwrap(), view.drawn().unwrap());
    assert!(a_map.complete && b_map.complete);
    assert_eq!(a_map.region, b_map.region, "the same sectors side by side");
    assert!(a_map.rect.right() <= b_map.rect.left(), "A on the left");
    let region = b_map.region;
    let stats = |config: &UniverseConfig| {
        let generator = SectorGenerator::new(config, 1);
        let summary =
            RegionSummary::generate(&generator, config.simulation.sector_size, region, &|_| ());
        RegionStats::of(&summary)
    };
    let (a, b) = (stats(view.kept_config().unwrap()), stats(view.config()));
    assert_ne!(a.hazard_share, b.hazard_share);
    let table = RegionStats::compare_table(&a, &b);
    assert_eq!(view.stats_table().as_deref(), Some(table.as_str()));
    assert!(
        harness
            .query_by_label_contains("sectors with a hazard")
            .is_some()
    );
    let report = view.report(PPP);
    assert!(
        report.contains(&format!("stats A: {}", a.headline())),
        "{report:#?}"
    );
    assert!(
        report.contains(&format!("stats: {}", b.headline())),
        "{report:#?}"
    );
    assert!(report.contains(&"compare: A default seed 1".to_string()));
}

#[test]
fn a_bad_field_is_named_in_the_error() {
    let text = EMBEDDED_CONFIG_TOML.replace("hazard_chance = 0.05", "hazard_chance = 1.5");
    let Err(error) = DesignView::new(Some(&text), "bad.toml") else {
        panic!("a hazard chance of 1.5 is accepted");
    };
    assert_eq!(
        error,
        "bad.toml: field `generation.hazard_chance`: must be between 0 and 1, got 1.5"
    );
}

#[test]
fn zoomed_out_a_large_region_is_shaded_per_sector() {
    let mut harness = default_view();
    harness.run();
    let rect = harness.state().map_rect().unwrap();
    // Out as far as the view goes, about the map's centre, with the wheel.
    for _ in 0..20 {
        harness.hover_at(rect.center());
        harness.event(egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Point,
            delta: vec2(0.0, -2_000.0),
            phase: egui::TouchPhase::Move,
            modifiers: egui::Modifiers::NONE,
            source: egui::MouseWheelSource::Wheel,
        });
        // Wheel scrolling is smoothed over a few frames.
        harness.run_steps(8);
    }
    settle(&mut harness);
    let view = harness.state();
    let drawn = view.drawn().unwrap();
    assert!(!drawn.detail);
    assert!(drawn.items.is_empty());
    assert!(
        drawn.region.width() >= 100 && drawn.region.height() >= 100,
        "{}",
        drawn.region
    );
    let report = view.report(PPP);
    assert!(report.iter().any(|l| l.ends_with("more not listed")));
    let generator = SectorGenerator::new(view.config(), 1);
    for (x, y, asteroids, ..) in reported_sectors(&report).into_iter().step_by(97) {
        let contents = generator.generate(SectorCoord::new(x, y));
        assert_eq!(asteroids, contents.asteroids.len());
    }

    // Back in close: the sectors kept as measures only are generated again, in full.
    harness.state_mut().camera.points_per_metre = 0.2;
    settle(&mut harness);
    assert!(harness.state().drawn().unwrap().detail);
    assert_report_matches_generator(harness.state());
}

#[test]
fn keys_act_on_the_view_but_not_while_typing() {
    let mut harness = default_view();
    harness.run();
    harness.key_press(egui::Key::C);
    harness.run();
    assert!(harness.state().comparing(), "C keeps A and compares");
    harness.key_press(egui::Key::C);
    harness.run();
    assert!(!harness.state().comparing());
    // Typing in the seed field does not toggle the comparison.
    harness.get_by_label("Seed").focus();
    harness.run();
    harness.key_press(egui::Key::C);
    harness.run();
    assert!(!harness.state().comparing());
}
