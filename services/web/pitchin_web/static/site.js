// A little help where JavaScript runs; every form works without it.
(function () {
  "use strict";
  var zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
  if (zone && document.cookie.indexOf("tz=" + zone) === -1) {
    // The server shows times in this zone from the next page on.
    document.cookie = "tz=" + zone + "; path=/; max-age=31536000; samesite=lax";
  }
  document.addEventListener("DOMContentLoaded", function () {
    if (zone) {
      document.querySelectorAll("input[data-fill-zone]").forEach(function (input) {
        if (!input.value) { input.value = zone; }
      });
    }
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); }
  });
})();
