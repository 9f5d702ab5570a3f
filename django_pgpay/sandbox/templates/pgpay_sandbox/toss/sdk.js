/*
 * django-pgpay payment sandbox: a stand-in for https://js.tosspayments.com/v2/standard.
 *
 * TossPayments(clientKey).payment({customerKey}).requestPayment({...}) and
 * TossPayments(clientKey).widgets({customerKey}) open the sandbox's payment
 * window by a full-page navigation (the redirect flow: successUrl/failUrl).
 * No money moves. Nothing here talks to Toss.
 */
(function (window, document) {
  "use strict";

  var CHECKOUT_URL = "{{ checkout_url|escapejs }}";
  var METHODS = ["CARD", "TRANSFER", "VIRTUAL_ACCOUNT", "MOBILE_PHONE", "CULTURE_GIFT_CERTIFICATE", "FOREIGN_EASY_PAY"];
  var WIDGET_METHODS = [["CARD", "카드"], ["TRANSFER", "계좌이체"], ["VIRTUAL_ACCOUNT", "가상계좌"], ["MOBILE_PHONE", "휴대폰"]];
  var ORDER_ID = /^[A-Za-z0-9_-]{6,64}$/;

  function TossPaymentsError(code, message) {
    var error = new Error(message);
    error.name = "TossPaymentsError";
    error.code = code;
    return error;
  }

  function reject(code, message) {
    return Promise.reject(TossPaymentsError(code, message));
  }

  function isUrl(value) {
    return typeof value === "string" && /^https?:\/\/[^\/\s]+/i.test(value);
  }

  function copy(source) {
    var target = {};
    for (var name in source) {
      if (Object.prototype.hasOwnProperty.call(source, name)) target[name] = source[name];
    }
    return target;
  }

  function problem(params) {
    if (!params || typeof params !== "object") return ["INVALID_PARAMETERS", "requestPayment needs an object of parameters."];
    if (METHODS.indexOf(params.method) < 0) return ["INVALID_METHOD", "method must be one of " + METHODS.join(", ") + "."];
    var amount = params.amount;
    if (!amount || typeof amount !== "object" || typeof amount.value !== "number" || !(amount.value > 0)) {
      return ["INVALID_AMOUNT_VALUE", "amount must be {currency: \"KRW\", value: <a positive number>}."];
    }
    if ((amount.currency || "KRW") === "KRW" && Math.floor(amount.value) !== amount.value) {
      return ["INVALID_AMOUNT_VALUE", "KRW amounts are whole numbers of won."];
    }
    if (typeof params.orderId !== "string" || !ORDER_ID.test(params.orderId)) {
      return ["INVALID_ORDER_ID", "orderId must be 6-64 characters of A-Z, a-z, 0-9, '-' and '_'."];
    }
    if (typeof params.orderName !== "string" || !params.orderName) return ["INVALID_ORDER_NAME", "orderName is required."];
    if (params.successUrl === undefined && params.failUrl === undefined) {
      return ["NOT_SUPPORTED", "The sandbox emulates the redirect flow only: pass successUrl and failUrl."];
    }
    if (!isUrl(params.successUrl)) return ["INVALID_SUCCESS_URL", "successUrl must be an absolute http(s) URL."];
    if (!isUrl(params.failUrl)) return ["INVALID_FAIL_URL", "failUrl must be an absolute http(s) URL."];
    return null;
  }

  function open(payload) {
    var form = document.createElement("form");
    form.method = "POST";
    form.action = CHECKOUT_URL;
    form.style.display = "none";
    var input = document.createElement("input");
    input.type = "hidden";
    input.name = "payload";
    input.value = JSON.stringify(payload);
    form.appendChild(input);
    document.body.appendChild(form);
    form.submit();
    // Like Toss's redirect flow: the page leaves, the promise never settles.
    return new Promise(function () {});
  }

  function element(selector) {
    return typeof selector === "string" ? document.querySelector(selector) : null;
  }

  function TossPayments(clientKey) {
    if (typeof clientKey !== "string" || !clientKey) {
      throw TossPaymentsError("INVALID_CLIENT_KEY", "TossPayments(clientKey) needs a client key.");
    }

    function payment(options) {
      var customerKey = options && options.customerKey;
      return {
        requestPayment: function (params) {
          var found = problem(params);
          if (found) return reject(found[0], found[1]);
          var payload = copy(params);
          payload.clientKey = clientKey;
          payload.customerKey = customerKey;
          payload.flow = "payment";
          return open(payload);
        },
        requestBillingAuth: function () {
          return reject("NOT_SUPPORTED", "Automatic payments (billing) are not emulated by the sandbox.");
        }
      };
    }

    function widgets(options) {
      var customerKey = options && options.customerKey;
      var amount = null;
      var selected = "CARD";
      var methodsRendered = false;
      var agreed = true;
      var listeners = {};

      function fire(name, value) {
        (listeners[name] || []).forEach(function (callback) { callback(value); });
      }

      return {
        setAmount: function (value) {
          if (!value || typeof value.value !== "number" || !(value.value > 0)) {
            return reject("INVALID_AMOUNT_VALUE", "setAmount needs {currency, value}.");
          }
          amount = {currency: value.currency || "KRW", value: value.value};
          return Promise.resolve();
        },
        renderPaymentMethods: function (params) {
          if (!amount) return reject("NEED_AMOUNT", "Call setAmount before renderPaymentMethods.");
          var target = element(params && params.selector);
          if (!target) return reject("INVALID_SELECTOR", "No element matches selector " + (params && params.selector) + ".");
          var box = document.createElement("fieldset");
          box.className = "pgpay-sandbox-widget";
          box.style.cssText = "border:2px dashed #fcc419;border-radius:12px;padding:12px 16px;margin:8px 0;font:15px system-ui,sans-serif";
          var legend = document.createElement("legend");
          legend.textContent = "결제 수단 · Toss Payments SANDBOX";
          box.appendChild(legend);
          WIDGET_METHODS.forEach(function (pair) {
            var label = document.createElement("label");
            label.style.cssText = "display:block;margin:6px 0;cursor:pointer";
            var radio = document.createElement("input");
            radio.type = "radio";
            radio.name = "pgpay-sandbox-method";
            radio.value = pair[0];
            radio.id = "pgpay-sandbox-method-" + pair[0];
            radio.checked = pair[0] === selected;
            radio.addEventListener("change", function () {
              selected = pair[0];
              fire("paymentMethodSelect", {code: selected});
            });
            label.appendChild(radio);
            label.appendChild(document.createTextNode(" " + pair[1]));
            box.appendChild(label);
          });
          target.innerHTML = "";
          target.appendChild(box);
          methodsRendered = true;
          return Promise.resolve({
            getSelectedPaymentMethod: function () { return Promise.resolve({type: "NORMAL", code: selected}); },
            on: function (name, callback) { (listeners[name] = listeners[name] || []).push(callback); },
            destroy: function () { target.innerHTML = ""; methodsRendered = false; return Promise.resolve(); }
          });
        },
        renderAgreement: function (params) {
          var target = element(params && params.selector);
          if (!target) return reject("INVALID_SELECTOR", "No element matches selector " + (params && params.selector) + ".");
          var label = document.createElement("label");
          label.style.cssText = "display:block;margin:8px 0;font:14px system-ui,sans-serif";
          var box = document.createElement("input");
          box.type = "checkbox";
          box.id = "pgpay-sandbox-agreement";
          box.checked = agreed;
          box.addEventListener("change", function () {
            agreed = box.checked;
            fire("agreementStatusChange", {agreedRequiredTerms: agreed});
          });
          label.appendChild(box);
          label.appendChild(document.createTextNode(" [필수] 결제 서비스 이용 약관 동의 (sandbox)"));
          target.innerHTML = "";
          target.appendChild(label);
          return Promise.resolve({
            on: function (name, callback) { (listeners[name] = listeners[name] || []).push(callback); },
            destroy: function () { target.innerHTML = ""; return Promise.resolve(); }
          });
        },
        requestPayment: function (params) {
          if (!methodsRendered) return reject("NEED_PAYMENT_METHODS", "Call renderPaymentMethods before requestPayment.");
          if (!agreed) return reject("NEED_AGREEMENT_WITH_REQUIRED_TERMS", "필수 약관에 동의해주세요.");
          var payload = copy(params || {});
          payload.amount = amount;
          payload.method = selected;
          var found = problem(payload);
          if (found) return reject(found[0], found[1]);
          payload.clientKey = clientKey;
          payload.customerKey = customerKey;
          payload.flow = "widget";
          return open(payload);
        }
      };
    }

    return {payment: payment, widgets: widgets};
  }

  TossPayments.ANONYMOUS = "@@ANONYMOUS";
  window.TossPayments = TossPayments;
})(window, document);
