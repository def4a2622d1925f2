// `glam trace --svg`: one panel per MoE layer, tokens down and experts across. Each cell's shade is
// the router probability p(expert | token); a filled dot marks a kept top-1 choice, a ring a kept
// top-2 choice, a red cross a choice dropped because the expert's C slots were full.

import GLaM

enum TraceChart {
    /// The SVG document for `run`.
    static func svg(_ run: TraceRun) -> String {
        let layers = run.moe.filter { run.isShown($0.layer) }
        let t = run.tokens.count
        // Layout: a margin round everything, the title and legend above the panels, one panel per layer.
        let cell = 14.0, labelWidth = 150.0, top = 70.0, gap = 40.0, margin = 10.0
        let e = run.configuration.numExperts
        let panelWidth = labelWidth + Double(e) * cell
        let title = "glam trace: routing of \"" + run.prompt + "\" (\(t) tokens)"
        let legend = "shade: router probability · ● kept 1st choice · ○ kept 2nd choice · ✕ dropped (expert full)"
        // Wide enough for the panels, and for the title (13 px) and legend (11 px) at an average
        // 0.6 em a character.
        let textWidth = max(Double(title.count) * 0.6 * 13, Double(legend.count) * 0.6 * 11)
        let panelsWidth = Double(layers.count) * (panelWidth + gap) - gap
        let width = margin + max(textWidth, panelsWidth) + margin
        let height = top + Double(t) * cell + margin
        var out = [
            ##"<svg xmlns="http://www.w3.org/2000/svg" width="\##(Int(width.rounded(.up)))" height="\##(Int(height.rounded(.up)))" font-family="Helvetica, Arial, sans-serif" font-size="11">"##,
            ##"<rect width="100%" height="100%" fill="white"/>"##,
            ##"<text x="\##(margin)" y="18" font-size="13">\##(escapedForXML(title))</text>"##,
            ##"<text x="\##(margin)" y="34" fill="#555">\##(legend)</text>"##,
        ]
        if layers.isEmpty { out.append(##"<text x="\##(margin)" y="60">this model has no MoE layer</text>"##) }
        for (panel, m) in layers.enumerated() {
            let x0 = margin + Double(panel) * (panelWidth + gap)
            out.append(
                ##"<text x="\##(x0)" y="\##(top - 24)" font-size="12">layer \##(m.layer): E = \##(m.numExperts), C = \##(m.capacity)</text>"##
            )
            for expert in 0..<e {
                out.append(
                    ##"<text x="\##(x0 + labelWidth + Double(expert) * cell + cell / 2)" y="\##(top - 6)" text-anchor="middle">\##(expert)</text>"##
                )
            }
            for route in m.tokens where route.token < t {
                let y = top + Double(route.token) * cell
                let label = "\(route.token) " + run.quoted(route.token)
                out.append(
                    ##"<text x="\##(x0 + labelWidth - 6)" y="\##(y + cell - 3)" text-anchor="end">\##(escapedForXML(label))</text>"##)
                var probability = [Double](repeating: 0, count: e)
                for entry in route.routerTop { probability[entry.expert] = entry.probability }
                for expert in 0..<e {
                    let x = x0 + labelWidth + Double(expert) * cell
                    let shade = Int(255 - 200 * min(max(probability[expert], 0), 1))
                    out.append(
                        ##"<rect x="\##(x)" y="\##(y)" width="\##(cell)" height="\##(cell)" fill="rgb(\##(shade),\##(shade),255)" stroke="#ddd"/>"##
                    )
                }
                for k in 0..<2 {
                    let cx = x0 + labelWidth + (Double(route.experts[k]) + 0.5) * cell, cy = y + cell / 2
                    switch route.outcomes[k] {
                    case .kept:
                        out.append(
                            k == 0
                                ? ##"<circle cx="\##(cx)" cy="\##(cy)" r="4" fill="#123"/>"##
                                : ##"<circle cx="\##(cx)" cy="\##(cy)" r="4" fill="none" stroke="#123" stroke-width="1.5"/>"##)
                    case .overCapacity:
                        out.append(
                            ##"<path d="M\##(cx - 4),\##(cy - 4)L\##(cx + 4),\##(cy + 4)M\##(cx - 4),\##(cy + 4)L\##(cx + 4),\##(cy - 4)" stroke="#d22" stroke-width="2"/>"##
                        )
                    case .notChosen, .padding:
                        break
                    }
                }
            }
        }
        out.append("</svg>")
        return out.joined(separator: "\n") + "\n"
    }
}
