/*
 * django-pgpay payment sandbox: a stand-in for https://cdn.portone.io/v2/browser-sdk.js (PortOne V2).
 *
 * PortOne.requestPayment(request) returns a promise. On a PC the sandbox's
 * window opens in a layer over the page and the promise resolves with
 * {transactionType, paymentId, txId} or, on failure, {..., code, message};
 * on a phone (with redirectUrl) the page goes to the window and comes back
 * to redirectUrl?paymentId=&transactionType=&txId=[&code=&message=].
 * No money moves. Nothing here talks to PortOne.
 */
(function (window, document) {
  "use strict";

  var CHECKOUT_URL = "{{ checkout_url|escapejs }}";
  var ORIGIN = "{{ origin|escapejs }}";
  var pending = null;

  function isMobile() {
    return /Mobi|Android|iPhone|iPad|iPod/i.test(window.navigator.userAgent || "");
  }

  window.addEventListener("message", function (event) {
    if (event.origin !== ORIGIN || !event.data || !event.data.pgpayPortone || !pending) return;
    var done = pending;
    pending = null;
    if (done.layer.parentNode) done.layer.parentNode.removeChild(done.layer);
    done.resolve(event.data.pgpayPortone);
  });

  function submit(target, payload) {
    var form = document.createElement("form");
    form.method = "POST";
    form.action = CHECKOUT_URL;
    form.target = target;
    form.style.display = "none";
    var input = document.createElement("input");
    input.type = "hidden";
    input.name = "payload";
    input.value = JSON.stringify(payload);
    form.appendChild(input);
    document.body.appendChild(form);
    form.submit();
    window.setTimeout(function () { if (form.parentNode) form.parentNode.removeChild(form); }, 0);
  }

  function requestPayment(request) {
    if (!request || typeof request !== "object") {
      return Promise.resolve({transactionType: "PAYMENT", code: "INVALID_REQUEST", message: "결제 요청 파라미터가 없습니다."});
    }
    var redirect = isMobile() && !!request.redirectUrl;
    var payload = {params: request, mode: redirect ? "redirect" : "iframe", userAgent: window.navigator.userAgent, url: window.location.href};
    if (redirect) {
      submit("_self", payload);
      return new Promise(function () {});
    }
    if (pending) {
      return Promise.resolve({transactionType: "PAYMENT", paymentId: request.paymentId, code: "INVALID_REQUEST", message: "결제창이 이미 열려 있습니다."});
    }
    return new Promise(function (resolve) {
      var layer = document.createElement("div");
      layer.id = "pgpay-portone-layer";
      layer.style.cssText = "position:fixed;inset:0;z-index:2147483647;background:rgba(0,0,0,.45);display:flex;align-items:center;justify-content:center";
      var frame = document.createElement("iframe");
      frame.name = "pgpay-portone-window-" + Date.now();
      frame.id = "pgpay-portone-frame";
      frame.title = "PortOne sandbox payment window";
      // A phone-sized window: the layer fills the screen; elsewhere a card with a margin.
      frame.style.cssText = window.innerWidth <= 600
        ? "position:absolute;inset:0;width:100%;height:100%;border:0;border-radius:0;background:#fff"
        : "width:min(520px,calc(100% - 32px));height:min(760px,calc(100% - 32px));border:0;border-radius:16px;background:#fff";
      layer.appendChild(frame);
      document.body.appendChild(layer);
      pending = {resolve: resolve, layer: layer};
      submit(frame.name, payload);
    });
  }

  window.PortOne = {requestPayment: requestPayment};
})(window, document);
