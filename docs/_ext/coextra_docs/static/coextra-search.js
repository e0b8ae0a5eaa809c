/* Exact requirement lookup: a search for a requirement ID such as
   "R-FREE-3" (any case) goes straight to that requirement instead of
   listing every page that mentions "R", "FREE" or "3".  The IDs and their
   pages come from coextra-requirements.js, written by the build. */
(function () {
  "use strict";
  if (!/(^|\/)search(\.html)?$/.test(window.location.pathname)) {
    return;
  }
  var query = new URLSearchParams(window.location.search).get("q") || "";
  var id = query.trim().toUpperCase();
  if (!/^R-[A-Z]+-[0-9]+$/.test(id)) {
    return;
  }
  var targets = window.COEXTRA_REQUIREMENTS || {};
  if (!Object.prototype.hasOwnProperty.call(targets, id)) {
    return;
  }
  var root = document.documentElement.dataset.content_root || "";
  window.location.replace(root + targets[id]);
})();
