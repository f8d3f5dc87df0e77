/* The admin's margins chart (templates/admin/margins.html): revenue against upstream cost
   per UTC day, from the JSON the page embeds as #margins-data (micro-USD), with the vendored
   Chart.js. Axes, units and tooltips as on the portal's usage charts (static/js/charts.js),
   in the admin's colours, also when its theme toggle or "auto" changes them. */
(function () {
  "use strict";

  const source = document.getElementById("margins-data");
  const canvas = document.getElementById("margins-chart");
  if (!source || !canvas || !window.Chart) return;
  const data = JSON.parse(source.textContent);

  // Days are UTC days: "2026-03-14" read as UTC midnight, shown in UTC.
  const days = data.days.map((day) => Date.parse(day + "T00:00:00Z"));
  const fmt = (options) => new Intl.DateTimeFormat("en", { timeZone: "UTC", ...options });
  const dayText = fmt({ month: "short", day: "numeric" });
  const longDay = fmt({ weekday: "short", year: "numeric", month: "short", day: "numeric" });

  const { money } = window.TokenHubMoney;
  const moneyTick = window.TokenHubMoney.tickFormatter("en");
  function percent(i) {
    const revenue = data.revenue[i];
    if (!revenue) return "-";
    return (Math.round((1000 * data.margin[i]) / revenue) / 10).toFixed(1) + "%";
  }

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }
  function colours() {
    return {
      text: css("--body-quiet-color"), fg: css("--body-fg"), grid: css("--hairline-color"),
      border: css("--border-color"), panel: css("--body-bg"),
      revenue: css("--secondary"), upstream: css("--accent"), loss: css("--error-fg"),
    };
  }

  function options(c) {
    return {
      responsive: true, maintainAspectRatio: false, animation: { duration: 250 },
      interaction: { mode: "index", intersect: false },
      scales: {
        x: {
          grid: { display: false }, border: { color: c.border },
          title: { display: true, text: "Day (UTC)", color: c.text },
          ticks: { color: c.text, maxRotation: 0, autoSkipPadding: 12 },
        },
        y: {
          beginAtZero: true, grace: "5%", border: { display: false }, grid: { color: c.grid },
          title: { display: true, text: "USD", color: c.text },
          ticks: { color: c.text, maxTicksLimit: 6, callback: (v) => moneyTick(v) },
        },
      },
      plugins: {
        colors: { enabled: false },
        legend: {
          position: "bottom",
          labels: {
            color: c.fg, usePointStyle: true, pointStyle: "rectRounded", boxWidth: 8, boxHeight: 8,
            // One swatch per series, whatever colour a losing day's bar has.
            generateLabels: (chart) => Chart.defaults.plugins.legend.labels.generateLabels(chart)
              .map((item, i) => ({ ...item, fillStyle: i ? c.upstream : c.revenue, strokeStyle: i ? c.upstream : c.revenue })),
          },
        },
        tooltip: {
          backgroundColor: c.panel, titleColor: c.fg, bodyColor: c.fg, footerColor: c.fg,
          borderColor: c.border, borderWidth: 1, padding: 10, usePointStyle: true, boxPadding: 4,
          callbacks: {
            title: (items) => (items.length ? longDay.format(days[items[0].dataIndex]) + " (UTC)" : ""),
            label: (item) => item.dataset.label + ": " + money(item.raw),
            footer: (items) => {
              if (!items.length) return "";
              const i = items[0].dataIndex;
              const lines = ["Margin: " + money(data.margin[i]) + " (" + percent(i) + ")"];
              if (data.uncosted[i]) lines.push("Uncosted requests: " + data.uncosted[i]);
              return lines;
            },
          },
        },
      },
    };
  }

  function paint(datasets, c) {
    const [revenue, upstream] = datasets;
    Object.assign(revenue, { backgroundColor: c.revenue, borderColor: c.revenue });
    // A day that lost money shows its upstream bar in the error colour.
    const bars = data.margin.map((m) => (m < 0 ? c.loss : c.upstream));
    Object.assign(upstream, { backgroundColor: bars, borderColor: bars });
  }

  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  const bar = { type: "bar", borderRadius: 3, maxBarThickness: 28, categoryPercentage: 0.8, barPercentage: 0.9 };
  const datasets = [
    { ...bar, label: "Revenue", data: data.revenue },
    { ...bar, label: "Upstream cost", data: data.upstream },
  ];
  const initial = colours();
  paint(datasets, initial);
  const chart = new Chart(canvas, {
    type: "bar",
    data: { labels: days.map((ms) => dayText.format(ms)), datasets },
    options: options(initial),
  });

  // The admin's theme toggle sets data-theme on <html>; "auto" follows the system.
  const repaint = () => {
    const c = colours();
    paint(chart.data.datasets, c);
    chart.options = options(c);
    chart.update("none");
  };
  new MutationObserver(repaint).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", repaint);
})();
