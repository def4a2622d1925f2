// A minimal SVG line chart for loss curves (no dependencies): axes with ticks, one polyline per
// series, and a legend.

import Foundation

/// One named series of (x, y) points.
public struct ChartSeries: Sendable {
    /// The legend label.
    public var name: String
    /// The points, in x order.
    public var points: [(x: Double, y: Double)]
    /// An SVG colour.
    public var color: String

    /// A series.
    public init(name: String, points: [(x: Double, y: Double)], color: String) {
        self.name = name
        self.points = points
        self.color = color
    }
}

/// An SVG document plotting `series` (optionally with a logarithmic x axis).
public func lineChartSVG(title: String, xLabel: String, yLabel: String, series: [ChartSeries], logarithmicX: Bool = false) -> String {
    let (width, height, left, right, top, bottom) = (720.0, 440.0, 70.0, 20.0, 40.0, 60.0)
    let all = series.flatMap(\.points).filter { $0.y.isFinite && (!logarithmicX || $0.x > 0) }
    func fx(_ x: Double) -> Double { logarithmicX ? Foundation.log10(x) : x }
    let xs = all.map { fx($0.x) }, ys = all.map(\.y)
    let (xMin, xMax) = (xs.min() ?? 0, max(xs.max() ?? 1, (xs.min() ?? 0) + 1e-9))
    let (yMin, yMax) = (ys.min() ?? 0, max(ys.max() ?? 1, (ys.min() ?? 0) + 1e-9))
    func px(_ x: Double) -> Double { left + (fx(x) - xMin) / (xMax - xMin) * (width - left - right) }
    func py(_ y: Double) -> Double { top + (yMax - y) / (yMax - yMin) * (height - top - bottom) }
    func label(_ v: Double) -> String { abs(v) >= 1e4 || (abs(v) < 1e-2 && v != 0) ? String(format: "%.2g", v) : String(format: "%.3g", v) }
    var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(width / 2)" y="22" text-anchor="middle" font-size="15">\(title)</text>
        <line x1="\(left)" y1="\(height - bottom)" x2="\(width - right)" y2="\(height - bottom)" stroke="black"/>
        <line x1="\(left)" y1="\(top)" x2="\(left)" y2="\(height - bottom)" stroke="black"/>
        <text x="\((left + width - right) / 2)" y="\(height - 18)" text-anchor="middle">\(xLabel)</text>
        <text x="18" y="\((top + height - bottom) / 2)" text-anchor="middle" transform="rotate(-90 18 \((top + height - bottom) / 2))">\(yLabel)</text>

        """
    for i in 0...5 {
        let t = Double(i) / 5
        let xValue = xMin + t * (xMax - xMin), yValue = yMin + t * (yMax - yMin)
        let x = left + t * (width - left - right), y = py(yValue)
        let xText = logarithmicX ? label(Foundation.pow(10, xValue)) : label(xValue)
        svg += "<line x1=\"\(x)\" y1=\"\(height - bottom)\" x2=\"\(x)\" y2=\"\(height - bottom + 5)\" stroke=\"black\"/>"
        svg += "<text x=\"\(x)\" y=\"\(height - bottom + 18)\" text-anchor=\"middle\">\(xText)</text>\n"
        svg += "<line x1=\"\(left - 5)\" y1=\"\(y)\" x2=\"\(width - right)\" y2=\"\(y)\" stroke=\"#ddd\"/>"
        svg += "<text x=\"\(left - 8)\" y=\"\(y + 4)\" text-anchor=\"end\">\(label(yValue))</text>\n"
    }
    for (index, s) in series.enumerated() {
        let points = s.points.filter { $0.y.isFinite && (!logarithmicX || $0.x > 0) }
            .map { String(format: "%.1f,%.1f", px($0.x), py($0.y)) }.joined(separator: " ")
        svg += "<polyline fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"2\" points=\"\(points)\"/>\n"
        let ly = top + 16 + Double(index) * 18
        svg +=
            "<line x1=\"\(width - right - 170)\" y1=\"\(ly - 4)\" x2=\"\(width - right - 145)\" y2=\"\(ly - 4)\" stroke=\"\(s.color)\" stroke-width=\"3\"/>"
        svg += "<text x=\"\(width - right - 140)\" y=\"\(ly)\">\(s.name)</text>\n"
    }
    return svg + "</svg>\n"
}
