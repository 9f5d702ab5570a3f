import cProfile, pstats, time
from django.test import Client
from tests.test_toss_views import *  # noqa

def test_prof(buyer, toss_booking, toss_api, seat):
    seat.remain = 1000; seat.save()
    client = Client(); client.force_login(buyer)
    items = []
    for i in range(80):
        b = toss_booking()
        key = toss_api.authorize(b)
        assert client.get(return_url(b, key)).status_code == 200
        items.append(b)
    c = csrf_client(buyer)
    forms = [cancel_form(c, b) for b in items[:1]]
    p = cProfile.Profile()
    t0 = time.process_time()
    for b in items:
        action = f"/pay/cancel/testapp.booking/{b.order_number}/"
        from django_pgpay.views import CancelView
        page = c.get("/history/").content.decode()
        block = page.split(f'id="booking-{b.order_number}"', 1)[1].split("</li>", 1)[0]
        form = next(f for f in re.findall(r"<form.*?</form>", block, re.S) if 'name="amount"' not in f)
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
        p.enable()
        r = c.post(action, {**fields, "confirm": "1"})
        r2 = c.post(action, {**fields, "confirm": "1"})
        p.disable()
        assert r.status_code == 302, r.content[:500]
    st = pstats.Stats(p); st.sort_stats("cumulative").print_stats(90)
