// A minimal SVG line chart for loss curves (no dependencies): axes with ticks, one polyline per
// series, and a legend.

import Foundation

/// One named series of (x, y) points.
struct ChartSeries: Sendable {
    /// The legend label.
    var name: String
    /// The points, in x order.
    var points: [(x: Double, y: Double)]
    /// An SVG colour.
    var color: String
    /// An optional band drawn translucent behind the line (for example the range over seeds), in x order.
    var band: [(x: Double, low: Double, high: Double)]

    /// A series, with an optional band around it.
    init(name: String, points: [(x: Double, y: Double)], color: String, band: [(x: Double, low: Double, high: Double)] = []) {
        self.name = name
        self.points = points
        self.color = color
        self.band = band
    }
}

/// An SVG document plotting `series` (optionally with a logarithmic x axis).
func lineChartSVG(title: String, xLabel: String, yLabel: String, series: [ChartSeries], logarithmicX: Bool = false) -> String {
    let (title, xLabel, yLabel) = (escapedForXML(title), escapedForXML(xLabel), escapedForXML(yLabel))
    let (width, height, left, right, top, bottom) = (720.0, 440.0, 70.0, 20.0, 40.0, 60.0)
    let bandPoints: [(x: Double, y: Double)] = series.flatMap { $0.band.flatMap { [(x: $0.x, y: $0.low), (x: $0.x, y: $0.high)] } }
    let all = (series.flatMap(\.points) + bandPoints)
        .filter { $0.y.isFinite && (!logarithmicX || $0.x > 0) }
    func fx(_ x: Double) -> Double { logarithmicX ? Foundation.log10(x) : x }
    let xs = all.map { fx($0.x) }, ys = all.map(\.y)
    let (xMin, xMax) = (xs.min() ?? 0, max(xs.max() ?? 1, (xs.min() ?? 0) + 1e-9))
    let (yMin, yMax) = (ys.min() ?? 0, max(ys.max() ?? 1, (ys.min() ?? 0) + 1e-9))
    func px(_ x: Double) -> Double { left + (fx(x) - xMin) / (xMax - xMin) * (width - left - right) }
    func py(_ y: Double) -> Double { top + (yMax - y) / (yMax - yMin) * (height - top - bottom) }
    var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(width / 2)" y="22" text-anchor="middle" font-size="15">\(title)</text>
        <line x1="\(left)" y1="\(height - bottom)" x2="\(width - right)" y2="\(height - bottom)" stroke="black"/>
        <line x1="\(left)" y1="\(top)" x2="\(left)" y2="\(height - bottom)" stroke="black"/>
        <text x="\((left + width - right) / 2)" y="\(height - 18)" text-anchor="middle">\(xLabel)</text>
        <text x="18" y="\((top + height - bottom) / 2)" text-anchor="middle" transform="rotate(-90 18 \((top + height - bottom) / 2))">\(yLabel)</text>

        """
    for tick in chartTicks(from: xMin, to: xMax, logarithmic: logarithmicX) {
        let x = left + (tick.position - xMin) / (xMax - xMin) * (width - left - right)
        svg += "<line x1=\"\(x)\" y1=\"\(height - bottom)\" x2=\"\(x)\" y2=\"\(height - bottom + 5)\" stroke=\"black\"/>"
        svg += "<text x=\"\(x)\" y=\"\(height - bottom + 18)\" text-anchor=\"middle\">\(tick.label)</text>\n"
    }
    for tick in chartTicks(from: yMin, to: yMax, logarithmic: false) {
        let y = py(tick.position)
        svg += "<line x1=\"\(left - 5)\" y1=\"\(y)\" x2=\"\(width - right)\" y2=\"\(y)\" stroke=\"#ddd\"/>"
        svg += "<text x=\"\(left - 8)\" y=\"\(y + 4)\" text-anchor=\"end\">\(tick.label)</text>\n"
    }
    for s in series where !s.band.isEmpty {
        let band = s.band.filter { $0.low.isFinite && $0.high.isFinite && (!logarithmicX || $0.x > 0) }
        let outline = band.map { (px($0.x), py($0.high)) } + band.reversed().map { (px($0.x), py($0.low)) }
        let points = outline.map { String(format: "%.1f,%.1f", $0.0, $0.1) }.joined(separator: " ")
        svg += "<polygon fill=\"\(s.color)\" fill-opacity=\"0.18\" stroke=\"none\" points=\"\(points)\"/>\n"
    }
    for (index, s) in series.enumerated() {
        let points = s.points.filter { $0.y.isFinite && (!logarithmicX || $0.x > 0) }
            .map { String(format: "%.1f,%.1f", px($0.x), py($0.y)) }.joined(separator: " ")
        svg += "<polyline fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"2\" points=\"\(points)\"/>\n"
        let ly = top + 16 + Double(index) * 18
        svg +=
            "<line x1=\"\(width - right - 170)\" y1=\"\(ly - 4)\" x2=\"\(width - right - 145)\" y2=\"\(ly - 4)\" stroke=\"\(s.color)\" stroke-width=\"3\"/>"
        svg += "<text x=\"\(width - right - 140)\" y=\"\(ly)\">\(escapedForXML(s.name))</text>\n"
    }
    return svg + "</svg>\n"
}

/// `text` with XML's five special characters as entities, for text and attributes of an SVG.
func escapedForXML(_ text: String) -> String {
    var out = ""
    for character in text {
        switch character {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&apos;"
        default: out.append(character)
        }
    }
    return out
}

/// Axis ticks at round values inside `[low, high]`: multiples of 1, 2 or 5 × 10^k, about five of
/// them, labelled with just the decimals their spacing needs (so 4.5, 5, 5.5, never 4.57). On a
/// logarithmic axis (`low`, `high` are log10 values) the ticks are the powers of ten, or 1-2-5
/// steps within one decade. `position` is in the axis' own units (log10 on a logarithmic axis).
func chartTicks(from low: Double, to high: Double, logarithmic: Bool) -> [(position: Double, label: String)] {
    guard low.isFinite, high.isFinite, high > low else { return [] }
    if logarithmic {
        let decades = Int(Foundation.floor(low))...Int(Foundation.ceil(high))
        var values = decades.map { Foundation.pow(10, Double($0)) }
        if decades.count <= 3 { values = decades.flatMap { d in [1.0, 2, 5].map { $0 * Foundation.pow(10, Double(d)) } } }
        return values.filter { Foundation.log10($0) >= low - 1e-9 && Foundation.log10($0) <= high + 1e-9 }
            .map { (Foundation.log10($0), String(format: "%g", $0)) }
    }
    let rough = (high - low) / 5
    let magnitude = Foundation.pow(10, Foundation.floor(Foundation.log10(rough)))
    // The 1-2-5 spacing nearest a fifth of the range (by ratio).
    let step = [1.0, 2, 5, 10].map { $0 * magnitude }.min { abs(Foundation.log($0 / rough)) < abs(Foundation.log($1 / rough)) }!
    let decimals = max(0, -Int(Foundation.floor(Foundation.log10(step) + 1e-9)))
    var ticks: [(Double, String)] = []
    var k = Foundation.ceil(low / step - 1e-9)
    while k * step <= high + 1e-9 * step {
        let value = k * step
        // Large values (training FLOPs) in scientific notation: 2e+12, not 2000000000000.
        let shown = value == 0 ? 0 : value  // never "-0"
        let label = step >= 1e5 ? String(format: "%g", shown) : String(format: "%.\(decimals)f", shown)
        ticks.append((value, label))
        k += 1
    }
    return ticks
}
