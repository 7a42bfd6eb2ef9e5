//! Maps of generated regions as images: asteroid ore, nebulae, hazards, the sector grid, a
//! title, a legend and a scale. Zoomed in far enough (16+ pixels per sector), each sector's
//! actual asteroids, nebulae and hazards are drawn; further out, one coloured cell per sector.
//!
//! Rows are drawn top to bottom: the top row is the region's smallest y.

use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::mono_font::ascii::FONT_6X10;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::text::Text;
use image::{Rgb, RgbImage};

use astroboids_engine::stats::nearest_rank;
use astroboids_sim::sectors::SectorGenerator;

use crate::region::RegionSummary;

/// Largest image side a map may have, in pixels.
pub const MAX_MAP_SIDE: u32 = 8_192;
/// The map side `auto` zoom aims for.
const AUTO_MAP_SIDE: u32 = 1_200;
/// From this zoom on, sectors are drawn feature by feature.
pub const DETAIL_PIXELS_PER_SECTOR: u32 = 16;

const MARGIN: u32 = 10;
const TITLE_HEIGHT: u32 = 18;
const LEGEND_HEIGHT: u32 = 58;
/// Room the legend needs, whatever the map's width.
const MIN_WIDTH: u32 = 620;

/// Empty space.
pub const SPACE: [u8; 3] = [8, 10, 18];
const PAPER: [u8; 3] = [24, 26, 34];
pub const TEXT: [u8; 3] = [225, 228, 235];
const DIM_TEXT: [u8; 3] = [150, 155, 170];
pub const NEBULA: [u8; 3] = [120, 80, 215];
pub const HAZARD: [u8; 3] = [235, 50, 50];
const GRID: [u8; 3] = [70, 78, 100];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error(
        "{pixels_per_sector} pixels per sector make a {side}-pixel map; at most {MAX_MAP_SIDE}: zoom out or render a smaller region"
    )]
    TooLarge { pixels_per_sector: u32, side: u64 },
    #[error("pixels per sector must be at least 1")]
    ZeroZoom,
    #[error("cannot encode the PNG: {0}")]
    Encode(String),
}

/// What a sector's cell brightness shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shade {
    /// Ore in the sector (how rich).
    #[default]
    Ore,
    /// Asteroids in the sector (how dense).
    Asteroids,
}

/// How to draw a map.
#[derive(Debug, Clone, PartialEq)]
pub struct MapStyle {
    pub pixels_per_sector: u32,
    pub shade: Shade,
    /// Ore per sector drawn at full brightness (more is drawn the same).
    pub ore_scale: u64,
    /// Asteroids per sector drawn at full brightness, when shading by asteroids.
    pub asteroid_scale: u64,
}

impl MapStyle {
    /// A zoom that fits the regions (side by side) in about 1,200 pixels high or 1,800 wide,
    /// and scales at the 99th percentile of them all (shared, so two maps compare by eye).
    pub fn auto(regions: &[&RegionSummary], shade: Shade) -> Self {
        let height = regions.iter().map(|r| r.region.height()).max().unwrap_or(1);
        let width: u32 = regions.iter().map(|r| r.region.width()).sum();
        let side = height.max(width * 2 / 3).max(1);
        let p99 = |value: fn(&crate::region::SectorSummary) -> u64| {
            let mut values: Vec<u64> = regions
                .iter()
                .flat_map(|r| r.sectors.iter().map(value))
                .collect();
            values.sort_unstable();
            // The statistics table's p99.
            nice_ceiling(nearest_rank(&values, 0.99).unwrap_or(0).max(1))
        };
        Self {
            pixels_per_sector: (AUTO_MAP_SIDE / side).clamp(1, 32),
            shade,
            ore_scale: p99(|s| s.ore),
            asteroid_scale: p99(|s| u64::from(s.asteroids)),
        }
    }

    /// The shaded value of a sector and the value drawn at full brightness.
    fn shaded(&self, sector: &crate::region::SectorSummary) -> (u64, u64) {
        match self.shade {
            Shade::Ore => (sector.ore, self.ore_scale),
            Shade::Asteroids => (u64::from(sector.asteroids), self.asteroid_scale),
        }
    }
}

/// The smallest 1, 2 or 5 times a power of ten at or above `v`.
fn nice_ceiling(v: u64) -> u64 {
    let mut power = 1u64;
    loop {
        for m in [1, 2, 5] {
            if m * power >= v {
                return m * power;
            }
        }
        power = power.saturating_mul(10);
    }
}

/// One map to draw: a generated region, the generator that made it (for zoomed-in detail)
/// and its caption.
pub struct MapSource<'a> {
    pub summary: &'a RegionSummary,
    pub generator: &'a SectorGenerator,
    pub caption: String,
}

/// Draws maps side by side (one for `render`, two for `compare`) under a title, with one
/// legend and scale for all.
pub fn render(
    maps: &[MapSource<'_>],
    style: &MapStyle,
    title: &str,
) -> Result<RgbImage, RenderError> {
    let pps = style.pixels_per_sector;
    if pps == 0 {
        return Err(RenderError::ZeroZoom);
    }
    for map in maps {
        let r = map.summary.region;
        let side = u64::from(r.width().max(r.height())) * u64::from(pps);
        if side > u64::from(MAX_MAP_SIDE) {
            return Err(RenderError::TooLarge {
                pixels_per_sector: pps,
                side,
            });
        }
    }
    let captioned = maps.len() > 1;
    let origins = map_origins(maps, pps);
    let maps_right = origins
        .iter()
        .zip(maps)
        .map(|(&(x, _), m)| x + m.summary.region.width() * pps)
        .max()
        .unwrap_or(0);
    let maps_height = maps
        .iter()
        .map(|m| m.summary.region.height() * pps)
        .max()
        .unwrap_or(0);
    let top = origins.first().map_or(TITLE_HEIGHT, |&(_, y)| y);
    let width = (maps_right + MARGIN).max(MIN_WIDTH);
    let height = top + maps_height + MARGIN + LEGEND_HEIGHT;
    let mut image = RgbImage::from_pixel(width, height, Rgb(PAPER));

    text(&mut image, MARGIN, 13, title, TEXT);
    for (map, &(x, y)) in maps.iter().zip(&origins) {
        if captioned {
            text(&mut image, x, TITLE_HEIGHT + 13, &map.caption, DIM_TEXT);
        }
        draw_map(&mut image, x, y, map, style);
    }
    let sector_size = maps.first().map_or(1000.0, |m| m.summary.sector_size);
    draw_legend(
        &mut image,
        top + maps_height + MARGIN,
        style,
        sector_size,
        grid_step(pps),
    );
    Ok(image)
}

/// Where each map's top-left sector is drawn in the image [`render`] makes of `maps`: side
/// by side, under the title (and, for more than one map, under their captions).
pub fn map_origins(maps: &[MapSource<'_>], pixels_per_sector: u32) -> Vec<(u32, u32)> {
    let top = if maps.len() > 1 {
        2 * TITLE_HEIGHT
    } else {
        TITLE_HEIGHT
    };
    let mut x = MARGIN;
    maps.iter()
        .map(|m| {
            let origin = (x, top);
            x += m.summary.region.width() * pixels_per_sector + MARGIN;
            origin
        })
        .collect()
}

/// PNG bytes of an image (fast compression: the designer loop waits for it).
pub fn png_bytes(image: &RgbImage) -> Result<Vec<u8>, RenderError> {
    use image::ImageEncoder as _;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| RenderError::Encode(e.to_string()))?;
    Ok(out)
}

/// Sectors between grid lines: lines at least 20 pixels apart.
fn grid_step(pps: u32) -> u32 {
    [1, 5, 10, 50, 100, 500, 1_000]
        .into_iter()
        .find(|step| step * pps >= 20)
        .unwrap_or(1_000)
}

fn draw_map(image: &mut RgbImage, left: u32, top: u32, map: &MapSource<'_>, style: &MapStyle) {
    let summary = map.summary;
    let region = summary.region;
    let pps = style.pixels_per_sector;
    let detail = pps >= DETAIL_PIXELS_PER_SECTOR;
    for row in 0..region.height() {
        for column in 0..region.width() {
            let (x0, y0) = (left + column * pps, top + row * pps);
            if detail {
                let contents = map.generator.generate(region.at(column, row));
                draw_sector_detail(image, x0, y0, pps, summary.sector_size, &contents, style);
            } else {
                let s = summary.get(column, row);
                let (value, full) = style.shaded(s);
                let mut colour = ore_colour(value, full);
                colour = blend(colour, NEBULA, nebula_tint(s.nebula_coverage));
                if s.hazards > 0 && pps < 3 {
                    colour = blend(colour, HAZARD, 0.6);
                }
                fill(image, x0, y0, pps, pps, colour);
                if s.hazards > 0 && pps >= 3 {
                    outline(image, x0, y0, pps, pps, HAZARD);
                }
            }
        }
    }
    // Grid lines on sector borders whose coordinate is a multiple of the step.
    let step = grid_step(pps);
    let (w, h) = (region.width() * pps, region.height() * pps);
    for column in 0..=region.width() {
        let x = i64::from(region.from.x) + i64::from(column);
        if x.rem_euclid(i64::from(step)) == 0 {
            let px = (left + column * pps).min(left + w - 1);
            for y in top..top + h {
                blend_pixel(image, px, y, GRID, 0.55);
            }
        }
    }
    for row in 0..=region.height() {
        let y = i64::from(region.from.y) + i64::from(row);
        if y.rem_euclid(i64::from(step)) == 0 {
            let py = (top + row * pps).min(top + h - 1);
            for x in left..left + w {
                blend_pixel(image, x, py, GRID, 0.55);
            }
        }
    }
}

fn draw_sector_detail(
    image: &mut RgbImage,
    x0: u32,
    y0: u32,
    pps: u32,
    sector_size: f32,
    contents: &astroboids_sim::sectors::SectorContents,
    style: &MapStyle,
) {
    fill(image, x0, y0, pps, pps, SPACE);
    let scale = pps as f32 / sector_size;
    let at = |local: astroboids_sim::space::Vec2| {
        (x0 as f32 + local.x * scale, y0 as f32 + local.y * scale)
    };
    let clip = (x0, y0, x0 + pps, y0 + pps);
    for n in &contents.nebulae {
        disc(image, at(n.local), n.radius * scale, clip, |c| {
            blend(c, NEBULA, 0.45)
        });
    }
    // An asteroid's brightness: its ore against a full sector's worth spread over 8 rocks.
    let rock_scale = (style.ore_scale / 8).max(1);
    for a in &contents.asteroids {
        let colour = ore_colour(u64::from(a.ore), rock_scale);
        let lit = blend(colour, [150, 150, 150], 0.25);
        disc(
            image,
            at(a.local),
            (a.radius * scale).max(0.8),
            clip,
            |_| lit,
        );
    }
    for z in &contents.hazards {
        ring(image, at(z.local), z.radius * scale, clip, HAZARD);
    }
}

fn draw_legend(image: &mut RgbImage, top: u32, style: &MapStyle, sector_size: f32, step: u32) {
    let mut x = MARGIN;
    // The brightness ramp (zoomed in, rocks are drawn by their ore instead).
    let (shaded, full) = match style.shade {
        Shade::Ore => ("ore per sector", style.ore_scale),
        Shade::Asteroids => ("asteroids per sector", style.asteroid_scale),
    };
    text(image, x, top + 10, shaded, DIM_TEXT);
    let ramp_width = 150;
    for i in 0..ramp_width {
        let value = full * u64::from(i) / u64::from(ramp_width - 1);
        fill(image, x + i, top + 14, 1, 12, ore_colour(value, full));
    }
    text(image, x, top + 38, "0", TEXT);
    let max_label = format!("{full}+");
    text(
        image,
        x + ramp_width - 6 * max_label.len() as u32,
        top + 38,
        &max_label,
        TEXT,
    );
    x += ramp_width + 24;
    // Feature swatches.
    fill(image, x, top + 14, 12, 12, blend(SPACE, NEBULA, 0.6));
    text(image, x + 18, top + 24, "nebula", TEXT);
    outline(image, x, top + 32, 12, 12, HAZARD);
    text(image, x + 18, top + 42, "hazard", TEXT);
    x += 90;
    for i in 0..12 {
        blend_pixel(image, x + 6, top + 14 + i, GRID, 1.0);
    }
    let grid_label = if step == 1 {
        "grid: every sector".to_string()
    } else {
        format!("grid: every {step} sectors")
    };
    text(image, x + 18, top + 24, &grid_label, TEXT);
    // Scale bar: one grid step.
    let bar = step * style.pixels_per_sector;
    let bar_shown = bar.min(image.width().saturating_sub(x + 40));
    fill(image, x, top + 36, bar_shown.max(1), 3, TEXT);
    let metres = f64::from(step) * f64::from(sector_size);
    let label = if metres >= 1000.0 {
        format!("{} km", metres / 1000.0)
    } else {
        format!("{metres} m")
    };
    let label = if bar_shown < bar {
        format!("{label} (bar cut: {bar} px)")
    } else {
        label
    };
    text(image, x + bar_shown + 6, top + 42, &label, TEXT);
    let footnote = if style.pixels_per_sector >= DETAIL_PIXELS_PER_SECTOR {
        "top row = smallest y; every sector drawn to scale, rocks by their ore".to_string()
    } else {
        format!(
            "top row = smallest y; one cell per sector: brightness = {shaded}, purple = nebulae"
        )
    };
    text(image, MARGIN, top + 54, &footnote, DIM_TEXT);
}

/// How strongly a cell shows nebula: any nebula clearly, more coverage more so (a sector's
/// clouds typically cover a few percent of it, invisible if drawn to scale at one pixel).
fn nebula_tint(coverage: f32) -> f32 {
    if coverage <= 0.0 {
        0.0
    } else {
        (0.35 + 1.5 * coverage).min(0.85)
    }
}

/// Ore 0 is empty space; `scale` and above full brightness (through amber to pale yellow).
fn ore_colour(ore: u64, scale: u64) -> [u8; 3] {
    if ore == 0 {
        return SPACE;
    }
    let t = (ore as f32 / scale.max(1) as f32).min(1.0).sqrt();
    if t < 0.6 {
        blend([40, 30, 20], [205, 120, 40], t / 0.6)
    } else {
        blend([205, 120, 40], [255, 235, 160], (t - 0.6) / 0.4)
    }
}

fn blend(a: [u8; 3], b: [u8; 3], t: f32) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0);
    let mix = |x: u8, y: u8| (f32::from(x) + (f32::from(y) - f32::from(x)) * t).round() as u8;
    [mix(a[0], b[0]), mix(a[1], b[1]), mix(a[2], b[2])]
}

fn blend_pixel(image: &mut RgbImage, x: u32, y: u32, colour: [u8; 3], t: f32) {
    if x < image.width() && y < image.height() {
        let p = image.get_pixel_mut(x, y);
        p.0 = blend(p.0, colour, t);
    }
}

fn fill(image: &mut RgbImage, x0: u32, y0: u32, w: u32, h: u32, colour: [u8; 3]) {
    for y in y0..(y0 + h).min(image.height()) {
        for x in x0..(x0 + w).min(image.width()) {
            image.put_pixel(x, y, Rgb(colour));
        }
    }
}

fn outline(image: &mut RgbImage, x0: u32, y0: u32, w: u32, h: u32, colour: [u8; 3]) {
    for x in x0..x0 + w {
        blend_pixel(image, x, y0, colour, 1.0);
        blend_pixel(image, x, y0 + h - 1, colour, 1.0);
    }
    for y in y0..y0 + h {
        blend_pixel(image, x0, y, colour, 1.0);
        blend_pixel(image, x0 + w - 1, y, colour, 1.0);
    }
}

/// Pixels whose centres lie within `radius` of `centre`, inside `clip` (x0, y0, x1, y1).
fn disc(
    image: &mut RgbImage,
    centre: (f32, f32),
    radius: f32,
    clip: (u32, u32, u32, u32),
    paint: impl Fn([u8; 3]) -> [u8; 3],
) {
    let (cx, cy) = centre;
    let x_lo = ((cx - radius).floor().max(clip.0 as f32)) as u32;
    let x_hi = ((cx + radius).ceil().min(clip.2 as f32)) as u32;
    let y_lo = ((cy - radius).floor().max(clip.1 as f32)) as u32;
    let y_hi = ((cy + radius).ceil().min(clip.3 as f32)) as u32;
    for y in y_lo..y_hi {
        for x in x_lo..x_hi {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            if dx * dx + dy * dy <= radius * radius && x < image.width() && y < image.height() {
                let p = image.get_pixel_mut(x, y);
                p.0 = paint(p.0);
            }
        }
    }
}

/// A one-pixel circle outline.
fn ring(
    image: &mut RgbImage,
    centre: (f32, f32),
    radius: f32,
    clip: (u32, u32, u32, u32),
    colour: [u8; 3],
) {
    let steps = ((radius * 8.0).ceil() as u32).clamp(8, 4_096);
    for i in 0..steps {
        let a = i as f32 / steps as f32 * std::f32::consts::TAU;
        let (x, y) = (centre.0 + radius * a.cos(), centre.1 + radius * a.sin());
        if x >= clip.0 as f32 && y >= clip.1 as f32 && x < clip.2 as f32 && y < clip.3 as f32 {
            blend_pixel(image, x as u32, y as u32, colour, 1.0);
        }
    }
}

/// Draws `s` with its baseline at `baseline` (6 x 10 pixel characters).
fn text(image: &mut RgbImage, x: u32, baseline: u32, s: &str, colour: [u8; 3]) {
    let style = MonoTextStyle::new(&FONT_6X10, Rgb888::new(colour[0], colour[1], colour[2]));
    let _ = Text::new(s, Point::new(x as i32, baseline as i32), style).draw(&mut Canvas(image));
}

/// embedded-graphics draws into the image through this.
struct Canvas<'a>(&'a mut RgbImage);

impl OriginDimensions for Canvas<'_> {
    fn size(&self) -> Size {
        Size::new(self.0.width(), self.0.height())
    }
}

impl DrawTarget for Canvas<'_> {
    type Color = Rgb888;
    type Error = std::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(p, c) in pixels {
            if let (Ok(x), Ok(y)) = (u32::try_from(p.x), u32::try_from(p.y))
                && x < self.0.width()
                && y < self.0.height()
            {
                self.0.put_pixel(x, y, Rgb([c.r(), c.g(), c.b()]));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(1), 1);
        assert_eq!(nice_ceiling(3), 5);
        assert_eq!(nice_ceiling(7_300), 10_000);
        assert_eq!(nice_ceiling(12_001), 20_000);
    }

    #[test]
    fn grid_lines_stay_readable() {
        assert_eq!(grid_step(32), 1);
        assert_eq!(grid_step(6), 5);
        assert_eq!(grid_step(3), 10);
        assert_eq!(grid_step(1), 50);
    }

    #[test]
    fn ore_colours_grow_brighter_and_saturate() {
        let brightness = |c: [u8; 3]| c.iter().map(|&v| u32::from(v)).sum::<u32>();
        assert_eq!(ore_colour(0, 100), SPACE);
        assert!(brightness(ore_colour(10, 100)) < brightness(ore_colour(50, 100)));
        assert_eq!(ore_colour(100, 100), ore_colour(10_000, 100));
    }
}
