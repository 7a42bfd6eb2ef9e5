//! The design map of one configuration, from the generated sectors in the cache. Zoomed in,
//! each sector as the sim generated it: asteroids at their positions and radii, nebulae and
//! hazards as translucent discs. Zoomed out, one shade per sector (asteroid density, tinted by
//! nebula cover and hazards) drawn as one texture of a pixel per sector, so hundreds of
//! sectors across cost one textured rectangle. Colours are Okabe-Ito, which readers with the
//! common colour-vision deficiencies tell apart.

use egui::{
    Align2, Color32, ColorImage, FontId, Painter, Pos2, Rect, Stroke, TextureHandle,
    TextureOptions, vec2,
};

use astroboids_designer::Region;
use astroboids_designer::region::SectorSummary;
use astroboids_sim::space::SectorCoord;

use super::cache::{ConfigKey, SectorCache};
use crate::camera::Camera;
use crate::map::{ASTEROID, BACKGROUND, GRID, GRID_TEXT};

/// Okabe-Ito bluish green.
pub const NEBULA: Color32 = Color32::from_rgb(0, 158, 115);
/// Okabe-Ito vermillion.
pub const HAZARD: Color32 = Color32::from_rgb(213, 94, 0);
/// A sector not generated yet.
pub const PENDING: Color32 = Color32::from_rgb(22, 26, 40);
/// From this many points per sector on, sectors are drawn feature by feature.
pub const DETAIL_POINTS_PER_SECTOR: f32 = 40.0;
/// Grid lines are drawn from this many points per sector on (closer, they would be all grid).
const GRID_MIN_POINTS_PER_SECTOR: f32 = 8.0;
/// Sector coordinates are written from this many points per sector on.
const LABEL_MIN_POINTS_PER_SECTOR: f32 = 60.0;
/// An asteroid is drawn at least this many points across, to stay visible.
const MIN_ASTEROID_POINTS: f32 = 1.0;

/// Translucent fills: what lies under a nebula or hazard stays visible.
fn nebula_fill() -> Color32 {
    Color32::from_rgba_unmultiplied(NEBULA.r(), NEBULA.g(), NEBULA.b(), 70)
}

fn hazard_fill() -> Color32 {
    Color32::from_rgba_unmultiplied(HAZARD.r(), HAZARD.g(), HAZARD.b(), 80)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Asteroid,
    Nebula,
    Hazard,
}

impl ItemKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Asteroid => "asteroid",
            Self::Nebula => "nebula",
            Self::Hazard => "hazard",
        }
    }
}

/// One feature drawn, where (in points) and how large.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DrawnItem {
    pub kind: ItemKind,
    pub sector: SectorCoord,
    pub at: Pos2,
    pub radius: f32,
}

/// What one map drew.
#[derive(Debug, Clone, PartialEq)]
pub struct MapDrawn {
    pub rect: Rect,
    pub region: Region,
    /// Feature by feature (else shaded per sector).
    pub detail: bool,
    /// The features drawn (none when shaded).
    pub items: Vec<DrawnItem>,
    /// Every sector of the region was generated and drawn.
    pub complete: bool,
}

/// The shaded map's texture, remade only when what it shows changed.
#[derive(Default)]
pub struct ShadeTexture {
    handle: Option<TextureHandle>,
    made_for: Option<(ConfigKey, Region, u64)>,
}

/// Where and what one map draws.
pub struct MapSource<'a> {
    pub camera: &'a Camera,
    pub sector_size: f32,
    pub cache: &'a SectorCache,
    pub key: ConfigKey,
    /// Asteroids per sector at full brightness (the configuration's maximum).
    pub max_asteroids: u32,
    pub region: Region,
}

/// Draws `source` in `rect`, with `caption` (if any) in its top-left corner.
pub fn draw(
    painter: &Painter,
    rect: Rect,
    source: &MapSource<'_>,
    shade: &mut ShadeTexture,
    caption: Option<&str>,
) -> MapDrawn {
    let painter = painter.with_clip_rect(rect);
    painter.rect_filled(rect, 0.0, BACKGROUND);
    let points_per_sector = source.sector_size * source.camera.points_per_metre;
    let detail = points_per_sector >= DETAIL_POINTS_PER_SECTOR;
    let (items, complete) = if detail {
        draw_detail(&painter, rect, source)
    } else {
        (Vec::new(), draw_shaded(&painter, rect, source, shade))
    };
    grid(&painter, rect, source, points_per_sector);
    if let Some(caption) = caption {
        painter.text(
            rect.left_top() + vec2(8.0, 6.0),
            Align2::LEFT_TOP,
            caption,
            FontId::proportional(14.0),
            Color32::WHITE,
        );
    }
    MapDrawn {
        rect,
        region: source.region,
        detail,
        items,
        complete,
    }
}

/// Each sector's features; whether every sector was generated.
fn draw_detail(painter: &Painter, rect: Rect, source: &MapSource<'_>) -> (Vec<DrawnItem>, bool) {
    let camera = source.camera;
    let size = source.sector_size;
    let ppm = camera.points_per_metre;
    let region = source.region;
    let mut items = Vec::new();
    let mut complete = true;
    let mut draw = |kind, sector: SectorCoord, local: (f32, f32), radius: f32| {
        let at = camera.to_screen(rect, (sector.x, sector.y), local, size);
        let radius = match kind {
            ItemKind::Asteroid => (radius * ppm).max(MIN_ASTEROID_POINTS / 2.0),
            ItemKind::Nebula | ItemKind::Hazard => radius * ppm,
        };
        if !rect.expand(radius).contains(at) {
            return;
        }
        let _shape = match kind {
            ItemKind::Asteroid => painter.circle_filled(at, radius, ASTEROID),
            ItemKind::Nebula => painter.circle_filled(at, radius, nebula_fill()),
            ItemKind::Hazard => painter.circle(at, radius, hazard_fill(), Stroke::new(1.5, HAZARD)),
        };
        items.push(DrawnItem {
            kind,
            sector,
            at,
            radius,
        });
    };
    // Clouds and zones under the asteroids: every sector's, then every sector's asteroids.
    let sectors: Vec<SectorCoord> = (0..region.height())
        .flat_map(|row| (0..region.width()).map(move |column| region.at(column, row)))
        .collect();
    let contents = |coord| {
        let sector = source.cache.get(source.key, coord)?;
        sector.contents.as_ref()
    };
    for &coord in &sectors {
        let Some(sector) = contents(coord) else {
            complete = false;
            let corner = camera.sector_corner(rect, (coord.x, coord.y), size);
            let side = size * ppm;
            painter.rect_filled(Rect::from_min_size(corner, vec2(side, side)), 0.0, PENDING);
            continue;
        };
        for n in &sector.nebulae {
            draw(ItemKind::Nebula, coord, (n.local.x, n.local.y), n.radius);
        }
        for h in &sector.hazards {
            draw(ItemKind::Hazard, coord, (h.local.x, h.local.y), h.radius);
        }
    }
    for &coord in &sectors {
        if let Some(sector) = contents(coord) {
            for a in &sector.asteroids {
                draw(ItemKind::Asteroid, coord, (a.local.x, a.local.y), a.radius);
            }
        }
    }
    (items, complete)
}

/// One pixel per sector, stretched over the sectors' place on screen; whether every sector
/// was generated.
fn draw_shaded(
    painter: &Painter,
    rect: Rect,
    source: &MapSource<'_>,
    shade: &mut ShadeTexture,
) -> bool {
    let region = source.region;
    let made_for = (source.key, region, source.cache.version());
    let mut complete = true;
    if shade.made_for != Some(made_for) || shade.handle.is_none() {
        let pixels = (0..region.height())
            .flat_map(|row| (0..region.width()).map(move |column| region.at(column, row)))
            .map(|coord| match source.cache.get(source.key, coord) {
                Some(sector) => sector_shade(&sector.summary, source.max_asteroids),
                None => {
                    complete = false;
                    PENDING
                }
            })
            .collect();
        let image = ColorImage::new([region.width() as usize, region.height() as usize], pixels);
        match &mut shade.handle {
            Some(handle) => handle.set(image, TextureOptions::NEAREST),
            None => {
                shade.handle = Some(painter.ctx().load_texture(
                    "design-map-shade",
                    image,
                    TextureOptions::NEAREST,
                ));
            }
        }
        // Remembered only when complete: an incomplete picture is remade on every frame
        // until it is, as answers arrive.
        shade.made_for = complete.then_some(made_for);
    }
    let camera = source.camera;
    let side = source.sector_size * camera.points_per_metre;
    let corner = camera.sector_corner(rect, (region.from.x, region.from.y), source.sector_size);
    let placed = Rect::from_min_size(
        corner,
        vec2(region.width() as f32 * side, region.height() as f32 * side),
    );
    if let Some(handle) = &shade.handle {
        let uv = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
        painter.image(handle.id(), placed, uv, Color32::WHITE);
    }
    complete
}

/// A sector's shade: brighter with more asteroids, greener with more nebula, vermillion with a
/// hazard.
pub fn sector_shade(summary: &SectorSummary, max_asteroids: u32) -> Color32 {
    let density = if max_asteroids == 0 {
        0.0
    } else {
        (f32::from(summary.asteroids) / max_asteroids as f32).min(1.0)
    };
    // Any asteroid at all shows (a quarter brightness); the rest in proportion.
    let brightness = if summary.asteroids == 0 {
        0.0
    } else {
        0.25 + 0.75 * density
    };
    let mut colour = BACKGROUND.lerp_to_gamma(ASTEROID, brightness);
    colour = colour.lerp_to_gamma(NEBULA, 0.7 * summary.nebula_coverage);
    if summary.hazards > 0 {
        colour = colour.lerp_to_gamma(HAZARD, 0.55);
    }
    colour
}

fn grid(painter: &Painter, rect: Rect, source: &MapSource<'_>, points_per_sector: f32) {
    if points_per_sector < GRID_MIN_POINTS_PER_SECTOR {
        return;
    }
    let camera = source.camera;
    let size = source.sector_size;
    let region = source.region;
    let stroke = Stroke::new(1.0, GRID);
    let corner = camera.sector_corner(rect, (region.from.x, region.from.y), size);
    for column in 0..=region.width() {
        let x = corner.x + column as f32 * points_per_sector;
        painter.line_segment(
            [Pos2::new(x, rect.top()), Pos2::new(x, rect.bottom())],
            stroke,
        );
    }
    for row in 0..=region.height() {
        let y = corner.y + row as f32 * points_per_sector;
        painter.line_segment(
            [Pos2::new(rect.left(), y), Pos2::new(rect.right(), y)],
            stroke,
        );
    }
    if points_per_sector < LABEL_MIN_POINTS_PER_SECTOR {
        return;
    }
    for row in 0..region.height() {
        for column in 0..region.width() {
            let coord = region.at(column, row);
            let at = corner + vec2(column as f32, row as f32) * points_per_sector;
            painter.text(
                at + vec2(4.0, 3.0),
                Align2::LEFT_TOP,
                format!("{},{}", coord.x, coord.y),
                FontId::proportional(11.0),
                GRID_TEXT,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(asteroids: u16, nebula_coverage: f32, hazards: u8) -> SectorSummary {
        SectorSummary {
            asteroids,
            ore: 0,
            nebula_coverage,
            hazards,
        }
    }

    #[test]
    fn shades_tell_empty_dense_nebula_and_hazard_sectors_apart() {
        let empty = sector_shade(&summary(0, 0.0, 0), 24);
        assert_eq!(empty, BACKGROUND);
        let sparse = sector_shade(&summary(2, 0.0, 0), 24);
        let dense = sector_shade(&summary(24, 0.0, 0), 24);
        assert!(dense.r() > sparse.r() && sparse.r() > empty.r());
        assert_eq!(dense, ASTEROID);
        let nebula = sector_shade(&summary(0, 1.0, 0), 24);
        assert!(nebula.g() > nebula.r() && nebula.g() > empty.g());
        let hazard = sector_shade(&summary(0, 0.0, 1), 24);
        assert!(hazard.r() > hazard.g() && hazard.r() > hazard.b());
        // A configuration without asteroids divides by nothing.
        assert_eq!(sector_shade(&summary(0, 0.0, 0), 0), BACKGROUND);
    }
}
