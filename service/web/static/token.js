// The API token of this browser tab: kept in sessionStorage (gone when the tab closes), sent
// only in the Authorization header, never put in a URL. Shared by /docs and /explore.
"use strict";
window.EventsToken = (function () {
  var KEY = "events-service.token";
  // The bare secret, whether typed as "abc", "token abc" or "Bearer abc".
  function bare(value) {
    return String(value || "").trim().replace(/^(token|bearer)\s+/i, "").trim();
  }
  return {
    bare: bare,
    get: function () {
      try { return sessionStorage.getItem(KEY) || ""; } catch (e) { return ""; }
    },
    set: function (value) {
      try {
        if (bare(value)) sessionStorage.setItem(KEY, bare(value)); else sessionStorage.removeItem(KEY);
      } catch (e) { /* storage refused: the token lives in the page only */ }
    },
    header: function (value) {
      var secret = bare(value);
      return secret ? "token " + secret : "";
    },
  };
})();
