// django-pgpay admin: forms that move money are sent once (the server refunds once anyway,
// by the form's token); "Whole balance" fills the refund amount.
'use strict';
{
    document.addEventListener('submit', function(event) {
        const form = event.target;
        if (!form.matches('form[data-pgpay-once]')) {
            return;
        }
        if (form.dataset.pgpaySent) {
            event.preventDefault();
            return;
        }
        form.dataset.pgpaySent = '1';
    });
    document.addEventListener('click', function(event) {
        const button = event.target.closest('[data-pgpay-fill]');
        if (!button) {
            return;
        }
        const input = document.getElementById(button.dataset.pgpayFill);
        if (input) {
            input.value = button.dataset.value;
            input.focus();
        }
    });
}
