/*
 * django-pgpay payment sandbox: a stand-in for https://cdn.iamport.kr/v1/iamport.js (PortOne V1).
 *
 * IMP.init(merchantCode); IMP.request_pay(params, callback). On a PC the
 * sandbox's payment window opens in a layer over the page (an iframe) and
 * the callback gets {success, imp_uid, merchant_uid, ..., error_code,
 * error_msg}; on a phone the page goes to the window and comes back to
 * m_redirect_url?imp_uid=&merchant_uid=&imp_success= (the callback is not
 * called), as iamport.js does. No money moves. Nothing here talks to PortOne.
 */
(function (window, document) {
  "use strict";

  var CHECKOUT_URL = "{{ checkout_url|escapejs }}";
  var ORIGIN = "{{ origin|escapejs }}";
  var merchantCode = null;
  var pending = null;

  function isMobile() {
    return /Mobi|Android|iPhone|iPad|iPod/i.test(window.navigator.userAgent || "");
  }

  function answer(callback, rsp) {
    if (typeof callback === "function") window.setTimeout(function () { callback(rsp); }, 0);
  }

  function close() {
    var done = pending;
    pending = null;
    if (done && done.layer && done.layer.parentNode) done.layer.parentNode.removeChild(done.layer);
    return done;
  }

  window.addEventListener("message", function (event) {
    if (event.origin !== ORIGIN || !event.data || !event.data.pgpayPortone || !pending) return;
    var done = close();
    answer(done.callback, event.data.pgpayPortone);
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

  window.IMP = {
    init: function (code) {
      merchantCode = code;
    },
    request_pay: function (params, callback) {
      var failure = {success: false, imp_uid: null, merchant_uid: params && params.merchant_uid || null};
      if (!merchantCode) {
        failure.error_code = "F0000";
        failure.error_msg = "IMP.init(가맹점 식별코드)를 먼저 호출해주세요.";
        return answer(callback, failure);
      }
      if (!params || typeof params !== "object") {
        failure.error_code = "F0001";
        failure.error_msg = "결제 요청 파라미터가 없습니다.";
        return answer(callback, failure);
      }
      var redirect = isMobile() && !!params.m_redirect_url;
      var payload = {
        merchantCode: merchantCode,
        params: params,
        mode: redirect ? "redirect" : "iframe",
        userAgent: window.navigator.userAgent,
        url: window.location.href
      };
      if (redirect) {
        submit("_self", payload);
        return;
      }
      if (pending) {
        failure.error_code = "F0003";
        failure.error_msg = "결제창이 이미 열려 있습니다.";
        return answer(callback, failure);
      }
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
      pending = {callback: callback, layer: layer};
      submit(frame.name, payload);
    }
  };
})(window, document);
