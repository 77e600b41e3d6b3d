/* Midtrans simulator: a stand-in for Midtrans's midtrans-new-3ds.min.js, for offline tests.
   Load it like the real one:
   <script id="midtrans-script" src="{{ base }}v2/assets/js/midtrans-new-3ds.min.js"
           data-environment="sandbox" data-client-key="..."></script>
   MidtransNew3ds.getCardToken(cardData, {onSuccess, onFailure}) asks this simulator's
   GET /v2/token; authenticate(redirect_url, {performAuthentication, onSuccess, onFailure,
   onPending}) opens the 3DS page (in the iframe that performAuthentication shows) and reports
   the charge's result; redirect(redirect_url, {callbackUrl}) sends the browser there. */
(function (window) {
  "use strict";
  var BASE = {{ base | tojson }};
  var script = document.getElementById("midtrans-script") || document.currentScript;
  function clientKey() {
    return (script && script.getAttribute("data-client-key")) || window.MidtransNew3ds.clientKey;
  }
  function query(params) {
    return Object.keys(params).map(function (key) {
      return encodeURIComponent(key) + "=" + encodeURIComponent(params[key]);
    }).join("&");
  }
  function decide(response, options) {
    var code = String(response.status_code || "");
    if (code === "200") { (options.onSuccess || function () {})(response); }
    else if (code === "201") { (options.onPending || options.onSuccess || function () {})(response); }
    else { (options.onFailure || function () {})(response); }
  }
  window.MidtransNew3ds = {
    clientKey: null,
    getCardToken: function (cardData, options) {
      var params = {client_key: clientKey()};
      ["card_number", "card_exp_month", "card_exp_year", "card_cvv"].forEach(function (key) {
        if (cardData[key] !== undefined && cardData[key] !== null) { params[key] = String(cardData[key]); }
      });
      var request = new XMLHttpRequest();
      request.open("GET", BASE + "v2/token?" + query(params));
      request.onload = function () {
        var response;
        try { response = JSON.parse(request.responseText); }
        catch (e) { response = {status_code: String(request.status), status_message: "not JSON"}; }
        if (String(response.status_code) === "200") { (options.onSuccess || function () {})(response); }
        else { (options.onFailure || function () {})(response); }
      };
      request.onerror = function () {
        (options.onFailure || function () {})({status_code: "500", status_message: "network error"});
      };
      request.send();
    },
    authenticate: function (redirectUrl, options) {
      function listen(event) {
        if (event.origin + "/" !== BASE && BASE.indexOf(event.origin) !== 0) { return; }
        window.removeEventListener("message", listen);
        var response = typeof event.data === "string" ? JSON.parse(event.data) : event.data;
        decide(response, options);
      }
      window.addEventListener("message", listen);
      (options.performAuthentication || function (url) { window.open(url); })(redirectUrl);
    },
    redirect: function (redirectUrl, options) {
      var callback = options && options.callbackUrl;
      window.location.href = callback
        ? redirectUrl + (redirectUrl.indexOf("?") < 0 ? "?" : "&") + query({callback_url: callback})
        : redirectUrl;
    }
  };
})(window);
