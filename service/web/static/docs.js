// /docs: Swagger UI over the service's OpenAPI document, served from the service itself.
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  var SCHEME = "token"; // the OpenAPI security scheme's name (apiKey in the Authorization header)

  // Authorizing remembers the secret for this tab (shared with the explorer); logging out forgets it.
  var RememberToken = function () {
    return {
      statePlugins: {
        auth: {
          wrapActions: {
            authorize: function (original) {
              return function (payload) {
                var entry = payload && payload[SCHEME];
                if (entry && entry.value) {
                  window.EventsToken.set(entry.value);
                  entry.value = window.EventsToken.header(entry.value);
                }
                return original(payload);
              };
            },
            logout: function (original) {
              return function (payload) {
                window.EventsToken.set("");
                return original(payload);
              };
            },
          },
        },
      },
    };
  };

  var ui = SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    plugins: [RememberToken],
    layout: "BaseLayout",
    docExpansion: "list",
    defaultModelsExpandDepth: 1,
    displayRequestDuration: true,
    filter: true,
    showCommonExtensions: true,
    // No calls anywhere but this service: no online validator, no spec URL from the query string.
    validatorUrl: null,
    queryConfigEnabled: false,
    // A bare secret typed into "Authorize" still goes out as "token <secret>".
    requestInterceptor: function (request) {
      var value = request.headers && request.headers.Authorization;
      if (value && !/^(token|bearer)\s/i.test(value)) {
        request.headers.Authorization = window.EventsToken.header(value);
      }
      return request;
    },
    onComplete: function () {
      var secret = window.EventsToken.get();
      if (secret) ui.preauthorizeApiKey(SCHEME, window.EventsToken.header(secret));
    },
  });
  window.ui = ui;
})();
