/* The overview's usage charts: draws the JSON that logs.views._chart_data embeds as
   #usage-data with the vendored Chart.js. Hours are labelled in the viewer's zone (the one the
   server formatted the page in), with the date where the day changes; days are UTC days.
   Colours follow the theme's CSS variables, also when "auto" flips with the system setting. */
(function () {
  "use strict";

  const source = document.getElementById("usage-data");
  if (!source || !window.Chart) return;
  const data = JSON.parse(source.textContent);
  const words = data.labels;
  const lang = document.documentElement.lang || "en";
  const locale = lang.toLowerCase() === "zh-hans" ? "zh-Hans" : lang;
  const hourly = data.step === "hour";

  function zoneOrDefault(zone) {
    try {
      new Intl.DateTimeFormat("en", { timeZone: zone });
      return zone;
    } catch (e) {
      return undefined; // an offset-style name Intl does not know: the browser's own zone
    }
  }
  const zone = hourly ? zoneOrDefault(data.zone) : "UTC";
  const fmt = (options) => new Intl.DateTimeFormat(locale, { timeZone: zone, ...options });
  const hourText = fmt({ hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const dayText = fmt({ month: "short", day: "numeric" });
  const dayKey = fmt({ year: "numeric", month: "2-digit", day: "2-digit" });
  const longDay = fmt({ weekday: "short", year: "numeric", month: "short", day: "numeric" });
  const shortDay = fmt({ weekday: "short", month: "short", day: "numeric" });
  const zoneName = (ms) => {
    const part = fmt({ hour: "numeric", timeZoneName: "short" }).formatToParts(ms)
      .find((p) => p.type === "timeZoneName");
    return part ? part.value : "";
  };

  // Axis labels: an hour, and under it the date wherever the day changes.
  const labels = data.buckets.map((ms, i) => {
    if (!hourly) return dayText.format(ms);
    const changed = i === 0 || dayKey.format(ms) !== dayKey.format(data.buckets[i - 1]);
    return changed ? [hourText.format(ms), dayText.format(ms)] : hourText.format(ms);
  });
  function bucketTitle(i) {
    const start = data.buckets[i];
    if (!hourly) return longDay.format(start) + " (UTC)";
    const end = i + 1 < data.buckets.length ? data.buckets[i + 1] : data.until;
    return shortDay.format(start) + " " + hourText.format(start) + "–" + hourText.format(end) + " " + zoneName(start);
  }

  const { money } = window.TokenHubMoney;
  const moneyTick = window.TokenHubMoney.tickFormatter(locale);
  const compact = new Intl.NumberFormat(locale, { notation: "compact", maximumFractionDigits: 1 });
  const whole = new Intl.NumberFormat(locale);
  const percent = (v) => new Intl.NumberFormat(locale, { maximumFractionDigits: 1 }).format(v) + "%";

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }
  function theme() {
    return {
      text: css("--th-muted"), fg: css("--th-fg"), grid: css("--chart-grid"),
      panel: css("--th-panel"), border: css("--th-border"), err: css("--chart-err"),
      series: data.groups.map((g, i) => css(g.other ? "--chart-5" : "--chart-" + Math.min(i, 4))),
    };
  }

  function stacked(metric) {
    return data.groups.map((group) => ({
      type: "bar", label: group.name, data: group[metric], stack: "usage", yAxisID: "y",
      borderRadius: 3, maxBarThickness: 32, categoryPercentage: 0.85, barPercentage: 0.9,
    }));
  }

  const kinds = {
    cost: { metric: "cost", unit: words.usd, tick: moneyTick, value: money },
    tokens: { metric: "tokens", unit: words.tokens, tick: (v) => compact.format(v), value: (v) => whole.format(v) },
    requests: { metric: "requests", unit: words.requests, tick: (v) => compact.format(v), value: (v) => whole.format(v) },
  };

  function options(kind, colours) {
    const spec = kinds[kind];
    const scales = {
      x: {
        stacked: true, grid: { display: false }, border: { color: colours.border },
        ticks: { color: colours.text, maxRotation: 0, autoSkipPadding: 12 },
      },
      y: {
        stacked: true, beginAtZero: true, grace: "5%", border: { display: false },
        grid: { color: colours.grid }, title: { display: true, text: spec.unit, color: colours.text },
        ticks: { color: colours.text, maxTicksLimit: 6, precision: kind === "cost" ? undefined : 0,
                 callback: (v) => spec.tick(v) },
      },
    };
    if (kind === "requests") {
      scales.y1 = {
        position: "right", min: 0, suggestedMax: 10, border: { display: false },
        grid: { drawOnChartArea: false }, title: { display: true, text: words.percent, color: colours.err },
        ticks: { color: colours.err, maxTicksLimit: 6, callback: (v) => percent(v) },
      };
    }
    return {
      responsive: true, maintainAspectRatio: false, animation: { duration: 250 },
      interaction: { mode: "index", intersect: false },
      scales,
      plugins: {
        colors: { enabled: false }, // the theme's palette, set on each dataset
        legend: {
          display: data.groups.length > 0, position: "bottom",
          labels: { color: colours.fg, usePointStyle: true, pointStyle: "rectRounded", boxWidth: 8, boxHeight: 8 },
        },
        tooltip: {
          backgroundColor: colours.panel, titleColor: colours.fg, bodyColor: colours.fg,
          footerColor: colours.fg, borderColor: colours.border, borderWidth: 1, padding: 10,
          usePointStyle: true, boxPadding: 4,
          // Groups with nothing in the bucket are left out; the error rate, also 0 %, is not.
          filter: (item) => item.raw !== null && (item.raw !== 0 || item.dataset.yAxisID === "y1"),
          callbacks: {
            title: (items) => (items.length ? bucketTitle(items[0].dataIndex) : ""),
            label: (item) => {
              if (item.dataset.yAxisID === "y1") {
                const i = item.dataIndex;
                return words.errorRate + ": " + percent(item.raw) + " (" + words.errorsOf
                  .replace("%(errors)s", whole.format(data.total.errors[i]))
                  .replace("%(requests)s", whole.format(data.total.requests[i])) + ")";
              }
              return item.dataset.label + ": " + spec.value(item.raw);
            },
            footer: (items) => (items.length ? words.total + ": " + spec.value(data.total[spec.metric][items[0].dataIndex]) : ""),
          },
        },
      },
    };
  }

  function paint(datasets, colours) {
    datasets.forEach((dataset, i) => {
      if (dataset.yAxisID === "y1") {
        Object.assign(dataset, {
          borderColor: colours.err, backgroundColor: colours.err,
          pointBackgroundColor: colours.err, pointBorderColor: colours.err,
        });
      } else {
        Object.assign(dataset, {
          backgroundColor: colours.series[i], hoverBackgroundColor: colours.series[i],
          borderColor: colours.series[i],
        });
      }
    });
  }

  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  const charts = [];
  document.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
    const kind = canvas.dataset.chart;
    const datasets = stacked(kinds[kind].metric);
    if (kind === "requests") {
      datasets.push({
        type: "line", label: words.errorRate, data: data.error_rate, yAxisID: "y1", order: -1,
        // Points only where there is room for them; hovering still shows one.
        borderWidth: 2, pointRadius: (ctx) => (ctx.chart.width / labels.length < 16 ? 0 : 3),
        pointHoverRadius: 5,
        cubicInterpolationMode: "monotone", spanGaps: false,
      });
    }
    const colours = theme();
    paint(datasets, colours);
    const chart = new Chart(canvas, { type: "bar", data: { labels, datasets }, options: options(kind, colours) });
    charts.push([chart, kind]);
  });

  // The table per bucket stands in for the charts without JavaScript; here it can fold away.
  document.querySelectorAll("details.chart-data").forEach((table) => table.removeAttribute("open"));

  // "auto" follows the system setting: repaint when it changes.
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    const colours = theme();
    charts.forEach(([chart, kind]) => {
      paint(chart.data.datasets, colours);
      chart.options = options(kind, colours);
      chart.update("none");
    });
  });
})();
