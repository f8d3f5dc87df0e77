/* Money as the portal's `money` template filter shows it, for the charts (charts.js,
   margins.js): cents from a dollar up, else four significant digits (never "$0.00" for a
   real amount); axis ticks compact from $1,000. Amounts are micro-USD. */
window.TokenHubMoney = (function () {
  "use strict";

  const grouped = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  function money(micros) {
    const value = micros / 1e6;
    const size = Math.abs(value);
    const sign = value < 0 ? "-" : "";
    if (size >= 1 || size === 0) return sign + "$" + grouped.format(size);
    const places = Math.min(6, 3 - Math.floor(Math.log10(size)));
    const text = size.toFixed(places).replace(/0+$/, "");
    const [whole, fraction] = text.split(".");
    return sign + "$" + whole + "." + (fraction || "").padEnd(2, "0");
  }
  function tickFormatter(locale) {
    const compact = new Intl.NumberFormat(locale, { notation: "compact", maximumFractionDigits: 1 });
    return function moneyTick(micros) {
      const value = micros / 1e6;
      return Math.abs(value) >= 1000 ? "$" + compact.format(value) : money(micros);
    };
  }
  return { money, tickFormatter };
})();
