//! Line charts as standalone SVG, with integer coordinates only.

/// One line.
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) values: Vec<i128>,
}

const WIDTH: i128 = 720;
const HEIGHT: i128 = 320;
const LEFT: i128 = 90;
const RIGHT: i128 = 20;
const TOP: i128 = 40;
const BOTTOM: i128 = 40;
const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG line chart of the series over their index (the block step).
pub(crate) fn line_chart(title: &str, series: &[Series]) -> String {
    let points = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let all = series.iter().flat_map(|s| s.values.iter().copied());
    let (mut low, mut high) =
        all.fold((i128::MAX, i128::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if low > high {
        (low, high) = (0, 1);
    }
    low = low.min(0);
    if high == low {
        high = low + 1;
    }
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let steps = i128::try_from(points.saturating_sub(1).max(1)).unwrap_or(1);
    let x = |i: usize| LEFT + i128::try_from(i).unwrap_or(0) * plot_width / steps;
    let y = |v: i128| TOP + (high - v) * plot_height / (high - low);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"20\" font-size=\"15\">{}</text>\n\
         <line x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/>\n\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{}\" stroke=\"#999\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{high}</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{low}</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">block</text>\n",
        escape(title),
        y(low.max(0).min(high)),
        WIDTH - RIGHT,
        y(low.max(0).min(high)),
        HEIGHT - BOTTOM,
        LEFT - 6,
        TOP + 4,
        LEFT - 6,
        HEIGHT - BOTTOM,
        WIDTH - RIGHT,
        HEIGHT - 10,
    );
    for (index, line) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let path: Vec<String> = line
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{},{}", x(i), y(*v)))
            .collect();
        svg.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\n\
             <text x=\"{}\" y=\"{}\" fill=\"{colour}\">{}</text>\n",
            path.join(" "),
            LEFT + 10,
            TOP + 16 + 16 * i128::try_from(index).unwrap_or(0),
            escape(&line.name)
        ));
    }
    svg.push_str("</svg>\n");
    svg
}
