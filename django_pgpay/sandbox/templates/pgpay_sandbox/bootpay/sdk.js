/*
 * django-pgpay payment sandbox: a stand-in for https://js.bootpay.co.kr/bootpay-5.x.x.min.js.
 *
 * Bootpay.requestPayment({...}) opens the sandbox's payment window in an
 * iframe over the page (extra.open_type "iframe", the default), in a popup
 * ("popup") or by leaving the page ("redirect": the window then sends the
 * buyer to extra.redirect_url?event=...&receipt_id=...&order_id=...).
 * The promise resolves with {event: "confirm" | "done" | "issued", receipt_id,
 * order_id, price, data} and rejects with {event: "cancel" | "error",
 * error_code, message}. Bootpay.confirm() approves from the browser,
 * Bootpay.destroy() closes the window. No money moves. Nothing here talks to Bootpay.
 */
(function (window, document) {
  "use strict";

  var CHECKOUT_URL = "{{ checkout_url|escapejs }}";
  var SANDBOX_ORIGIN = "{{ sandbox_origin|escapejs }}";
  var MARK = "{{ mark|escapejs }}";
  var current = null;

  function failure(event, code, message) {
    return {event: event, error_code: code, message: message};
  }

  function isWhole(value) {
    return typeof value === "number" && isFinite(value) && Math.floor(value) === value;
  }

  function problem(request) {
    if (!request || typeof request !== "object") return ["INVALID_PARAMETER", "requestPayment needs an object of parameters."];
    if (!request.client_key && !request.application_id) return ["APP_CLIENT_KEY_NOT_FOUND", "client_key (or application_id) is required."];
    if (!isWhole(request.price) || request.price < 1) return ["INVALID_PARAMETER", "price must be a whole number of won, 1 or more."];
    if (typeof request.order_id !== "string" || !request.order_id) return ["INVALID_PARAMETER", "order_id is required."];
    if (typeof request.order_name !== "string" || !request.order_name) return ["INVALID_PARAMETER", "order_name is required."];
    if (request.items && request.items.length) {
      var total = 0;
      for (var i = 0; i < request.items.length; i++) {
        var item = request.items[i] || {};
        if (!isWhole(item.price) || !isWhole(item.qty)) return ["INVALID_PARAMETER", "items need a whole price and qty."];
        total += item.price * item.qty;
      }
      if (total !== request.price) {
        return ["RC_PRICE_NOT_MATCH", "price (" + request.price + ") is not the sum of items[].price x qty (" + total + ")."];
      }
    }
    var extra = request.extra || {};
    if (extra.open_type === "redirect" && !extra.redirect_url) {
      return ["RC_REDIRECT_URL_INVALID", "open_type \"redirect\" needs extra.redirect_url."];
    }
    return null;
  }

  function removeWindow(state) {
    if (!state) return;
    if (state.timer) window.clearInterval(state.timer);
    if (state.overlay && state.overlay.parentNode) state.overlay.parentNode.removeChild(state.overlay);
    if (state.popup && !state.popup.closed) state.popup.close();
    if (current === state) current = null;
  }

  function overlay() {
    var shade = document.createElement("div");
    shade.className = "pgpay-sandbox-bootpay-overlay";
    shade.setAttribute("style", "position:fixed;inset:0;z-index:2147483647;background:rgba(0,0,0,.45);display:flex;align-items:center;justify-content:center;");
    var frame = document.createElement("iframe");
    frame.name = MARK;
    frame.title = "Bootpay (sandbox)";
    // On a phone the window fills the screen (as Bootpay's does); elsewhere a card
    // that always leaves a margin, so its bottom is never cut off.
    frame.setAttribute("style", window.innerWidth <= 600
      ? "position:absolute;inset:0;width:100%;height:100%;border:0;border-radius:0;background:#fff;"
      : "width:min(480px,calc(100% - 32px));height:min(720px,calc(100% - 32px));border:0;border-radius:16px;background:#fff;");
    shade.appendChild(frame);
    document.body.appendChild(shade);
    return {shade: shade, frame: frame};
  }

  window.addEventListener("message", function (message) {
    var state = current;
    var data = message.data;
    if (!state || message.origin !== SANDBOX_ORIGIN || !data || data.source !== MARK || data.receipt_id !== state.receipt_id) return;
    var result = data.result || {};
    if (result.event === "confirm") {
      // Authenticated, waiting for the shop's approval: the window stays open
      // (showing that it waits) until the page leaves, Bootpay.confirm() or destroy().
      state.resolve(result);
      return;
    }
    removeWindow(state);
    if (result.event === "done" || result.event === "issued") state.resolve(result);
    else state.reject(result);
  });

  function requestPayment(request) {
    var found = problem(request);
    if (found) return Promise.reject(failure("error", found[0], found[1]));
    removeWindow(current);
    var extra = request.extra || {};
    var openType = extra.open_type === "popup" || extra.open_type === "redirect" ? extra.open_type : "iframe";
    var state = {popup: null, overlay: null, frame: null, settled: false};
    if (openType === "popup") {
      // Opened now, in the click that called requestPayment, or the browser blocks it.
      state.popup = window.open("", MARK, "width=480,height=720");
      if (!state.popup) return Promise.reject(failure("error", "POPUP_BLOCKED", "The browser blocked the payment window."));
    } else if (openType === "iframe") {
      var parts = overlay();
      state.overlay = parts.shade;
      state.frame = parts.frame;
    }
    var body = JSON.stringify({request: request, origin: window.location.origin, open_type: openType});
    return window.fetch(CHECKOUT_URL, {method: "POST", headers: {"Content-Type": "text/plain;charset=UTF-8"}, body: body, credentials: "omit"})
      .then(function (response) {
        return response.json().then(function (data) { return {ok: response.ok, data: data}; });
      })
      .then(function (answer) {
        if (!answer.ok) {
          removeWindow(state);
          return Promise.reject(answer.data);
        }
        var data = answer.data;
        if (openType === "redirect") {
          window.location.assign(data.url);
          return new Promise(function () {});
        }
        return new Promise(function (resolve, reject) {
          state.receipt_id = data.receipt_id;
          state.token = data.token;
          state.confirm_url = data.confirm_url;
          state.resolve = function (value) { state.settled = true; resolve(value); };
          state.reject = function (value) { state.settled = true; reject(value); };
          current = state;
          if (state.popup) {
            state.popup.location.href = data.url;
            state.timer = window.setInterval(function () {
              if (state.popup.closed && current === state) {
                removeWindow(state);
                if (!state.settled) state.reject(failure("cancel", "USER_CANCEL", "사용자가 결제창을 닫았습니다."));
              }
            }, 300);
          } else {
            state.frame.src = data.url;
          }
        });
      }, function (error) {
        removeWindow(state);
        return Promise.reject(failure("error", "NETWORK_ERROR", "The payment window could not be opened: " + (error && error.message)));
      });
  }

  function confirm() {
    var state = current;
    if (!state || !state.confirm_url) return Promise.reject(failure("error", "RC_NOT_FOUND", "No payment is waiting for approval."));
    return window.fetch(state.confirm_url, {method: "POST", headers: {"Content-Type": "text/plain;charset=UTF-8"}, body: JSON.stringify({t: state.token}), credentials: "omit"})
      .then(function (response) {
        return response.json().then(function (data) {
          removeWindow(state);
          return response.ok ? data : Promise.reject(data);
        });
      });
  }

  window.Bootpay = {
    requestPayment: requestPayment,
    confirm: confirm,
    destroy: function () { removeWindow(current); },
    dismiss: function () { removeWindow(current); },
    setLocale: function () {},
    sandbox: true
  };
})(window, document);
