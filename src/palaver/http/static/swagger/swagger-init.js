// Starts Swagger UI on the page served by palaver.http.docs. It lives in a file of
// its own, not an inline <script>, so the Content-Security-Policy can forbid inline
// scripts; the page passes the spec URL in a data attribute.
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    // No badge from validator.swagger.io: the docs must work offline and the
    // spec must not leave the server.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
})();
